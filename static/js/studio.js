// Finetune Studio's only script of its own: make failed htmx requests visible, show upload progress, bound the log.
// htmx does not swap 4xx/5xx responses, so without this a refused request (an expired CSRF token,
// a rate limit) would fail silently.
// Error answers to htmx requests are a short message fragment rendered by the server.
document.addEventListener("htmx:responseError", function (event) {
  var flash = document.getElementById("flash");
  if (!flash) { return; }
  var xhr = event.detail.xhr;
  var isFragment = (xhr.getResponseHeader("Content-Type") || "").indexOf("text/html") === 0
    && xhr.responseText.indexOf("<html") === -1 && xhr.responseText.length < 4000;
  if (isFragment) {
    flash.innerHTML = xhr.responseText;
    return;
  }
  var message = document.createElement("p");
  message.className = "flash flash-error";
  message.setAttribute("role", "alert");
  // The words come from the page, in its language (the <body> of templates/base.html).
  message.textContent = document.body.dataset.requestFailed.replace("{status}", xhr.status);
  flash.replaceChildren(message);
});

// Upload progress: forms marked data-upload-progress show their <progress> while htmx sends the file.
document.addEventListener("htmx:xhr:progress", function (event) {
  var form = event.target.closest ? event.target.closest("[data-upload-progress]") : null;
  var bar = form ? form.querySelector("progress") : null;
  if (!bar || !event.detail.lengthComputable) { return; }
  bar.hidden = false;
  bar.value = Math.round((event.detail.loaded / event.detail.total) * 100);
});

// A request that never reached the server (network down, server restarting): say so once; polling retries by itself.
document.addEventListener("htmx:sendError", function () {
  var flash = document.getElementById("flash");
  if (!flash || flash.querySelector("[data-offline-notice]")) { return; }
  var message = document.createElement("p");
  message.className = "flash flash-error";
  message.setAttribute("role", "alert");
  message.setAttribute("data-offline-notice", "");
  message.textContent = document.body.dataset.offline;
  flash.replaceChildren(message);
});

// The job log keeps its newest lines: polls append only what is new, and a long run would otherwise grow the
// page without end. Each line is a <span> followed by its newline.
var LOG_LINES_KEPT = 500;
document.addEventListener("htmx:oobAfterSwap", function (event) {
  var log = event.detail.target;
  if (!log || log.id !== "job-log-lines") { return; }
  while (log.childElementCount > LOG_LINES_KEPT) {
    var first = log.firstElementChild;
    if (first.nextSibling && first.nextSibling.nodeType === Node.TEXT_NODE) { log.removeChild(first.nextSibling); }
    log.removeChild(first);
  }
});
