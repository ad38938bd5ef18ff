"""Logging: JSON lines (or readable text) on stdout, one line per request, a request id throughout, secrets redacted."""
from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import sys
import time
import uuid
from urllib.parse import urlsplit

from flask import Flask, g, request
from pythonjsonlogger.json import JsonFormatter

from app.settings import Settings

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
JSON_FIELDS = {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"}
# A client's X-Request-ID is kept when it is this safe to log; otherwise a new one is made.
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# The id of the request (or of the request that started the job) whose work is being logged.
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
job_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)
request_log = logging.getLogger("app.request")
REDACTED = "[REDACTED]"
# Secret values shorter than this would redact ordinary words.
MIN_SECRET_LENGTH = 8
SECRET_PATTERNS = [
    # Authorization headers and the Studio's own tokens, wherever they appear.
    (re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}"), rf"\1 {REDACTED}"),
    (re.compile(r"\bfts_[A-Za-z0-9_-]+"), f"fts_{REDACTED}"),
    # Credentials inside URLs: scheme://user:password@host.
    (re.compile(r"([a-z][a-z0-9+.-]*://[^:/?#\s@]*:)[^@/\s]+@", re.I), rf"\1{REDACTED}@"),
    # name=value, name: value and "name": "value" where the name says it is a secret.
    (re.compile(r"(?i)([\w-]*(?:password|passwd|secret|token|api[_-]?key|kaggle[_-]?key|authorization|cookie"
                r"|session)[\w-]*[\"']?\s*[:=]\s*[\"']?)([^\s\"'&,;]+)"), rf"\1{REDACTED}"),
]


def secret_values(settings: Settings) -> list[str]:
    """The configured secrets themselves, so they are caught whatever surrounds them."""
    candidates = [settings.secret_key, settings.db_password, settings.minio_password, settings.kaggle_key,
                  settings.kaggle_api_token, settings.metrics_token, urlsplit(settings.resolved_database_url).password,
                  urlsplit(settings.redis_url).password]
    return sorted({value for value in candidates if value and len(value) >= MIN_SECRET_LENGTH}, key=len, reverse=True)


def redact(text: str, secrets: list[str] = ()) -> str:
    """text with every secret value and every secret-looking part replaced by [REDACTED]."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    for pattern, replacement in SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Redacts each record's message, exception and extra text fields before any handler formats them."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops it."""
        record.msg, record.args = redact(record.getMessage(), self.secrets), None
        if record.exc_info:
            record.exc_text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_info = None  # or formatters would format the original again, unredacted
        for name, value in list(vars(record).items()):
            if isinstance(value, str) and name not in ("name", "levelname", "pathname", "filename", "module"):
                setattr(record, name, redact(value, self.secrets))
        return True


class ContextFilter(logging.Filter):
    """Adds the current request id and job id to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate the record; never drops it."""
        for name, var in (("request_id", request_id_var), ("job_id", job_id_var)):
            if var.get() is not None and not hasattr(record, name):
                setattr(record, name, var.get())
        return True


def configure_logging(settings: Settings) -> None:
    """Send every record to stdout at the configured level: JSON lines or text, annotated, secrets redacted."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_studio", False)]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(make_formatter(settings.json_logs))
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter(secret_values(settings)))
    handler._studio = True
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # Requests are logged once, by init_app; the development server's own line would repeat them.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def make_formatter(json_lines: bool) -> logging.Formatter:
    """A JSON-lines formatter (time, level, logger, message, pid, then any extra field) or a readable one."""
    if json_lines:
        return JsonFormatter([*JSON_FIELDS, "message"], rename_fields=JSON_FIELDS, datefmt="%Y-%m-%dT%H:%M:%S%z")
    return logging.Formatter(FORMAT)


def init_app(app: Flask) -> None:
    """Give each request an id (echoed as X-Request-ID) and log it once when it is answered."""
    app.before_request(_start_request)
    app.after_request(_log_request)
    app.teardown_request(lambda _exc: request_id_var.set(None))


def _start_request() -> None:
    """Note when the request started and which id it goes by."""
    g.request_started = time.perf_counter()
    given = request.headers.get("X-Request-ID", "")
    request_id_var.set(given if REQUEST_ID_PATTERN.match(given) else uuid.uuid4().hex)


def _log_request(response):
    """One line per request: method, path, endpoint, status, duration, client and user."""
    duration_ms = round((time.perf_counter() - g.get("request_started", time.perf_counter())) * 1000, 2)
    response.headers["X-Request-ID"] = request_id_var.get() or ""
    request_log.info("%s %s %s %.1fms", request.method, request.path, response.status_code, duration_ms,
                     extra={"method": request.method, "path": request.path, "endpoint": request.endpoint,
                            "status": response.status_code, "duration_ms": duration_ms,
                            "client_ip": request.remote_addr, "user_id": _user_id()})
    return response


@contextlib.contextmanager
def job_context(job):
    """Log lines inside the block carry the job's id and the id of the request that started it."""
    tokens = [(var, var.set(value)) for var, value in ((request_id_var, job.meta.get("request_id")),
                                                       (job_id_var, job.id))]
    try:
        yield
    finally:
        for var, token in tokens:
            var.reset(token)


def current_request_id() -> str | None:
    """The id of the request (or job) being served, if any."""
    return request_id_var.get()


def _user_id() -> int | None:
    """The signed-in user's id, without loading a user the request did not need."""
    user = g.get("user") or g.get("_login_user")
    return getattr(user, "id", None) if getattr(user, "is_authenticated", False) else None
