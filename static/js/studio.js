// Finetune Studio's only script of its own: make failed htmx requests visible.
// htmx does not swap 4xx/5xx responses, so without this a refused request (an expired CSRF token,
// a rate limit) would fail silently.
document.addEventListener("htmx:responseError", function (event) {
  var flash = document.getElementById("flash");
  if (!flash) { return; }
  var status = event.detail.xhr.status;
  var message = document.createElement("p");
  message.className = "flash flash-error";
  message.setAttribute("role", "alert");
  message.textContent = status === 400
    ? "The page expired. Reload it and try again."
    : "The request failed (" + status + "). Try again in a moment.";
  flash.replaceChildren(message);
});
