"""One place that turns errors into responses: JSON under /api/, an HTML page elsewhere."""
from __future__ import annotations

import logging

import peewee
from flask import Flask, jsonify, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from app.errors import ServiceUnavailable, StudioError
from app.htmx import is_htmx
from app.openai_api.errors import openai_error_response

log = logging.getLogger(__name__)

# Codes of the API's error format for plain HTTP errors.
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


# What a page says for a plain HTTP error, in the user's language (werkzeug's descriptions are English only).
PAGE_MESSAGES = {
    400: _l("The request could not be understood."),
    403: _l("You may not open this page."),
    404: _l("This page does not exist, or it is not yours."),
    405: _l("This page does not answer that kind of request."),
    413: _l("What you sent is too large."),
    429: _l("Too many requests; wait a moment and try again."),
}


def wants_json() -> bool:
    """Whether this request is answered in the API's JSON format."""
    return request.path.startswith("/api/")


def error_response(status: int, code: str, message: str, details=None):
    """The error as JSON for the API (in OpenAI's format under /v1) or as a page for the browser, with its status."""
    if request.path.startswith("/v1/"):
        return openai_error_response(status, code, message, details)
    if wants_json():
        body = {"error": {"code": code, "message": message, "details": details}}
        return jsonify(body), status
    # htmx shows an error answer in the page's flash area (static/js/studio.js), so send only the message.
    template = "errors/_message.html" if is_htmx() else "errors/error.html"
    return render_template(template, status=status, message=message, details=details), status


def init_app(app: Flask) -> None:
    """Register the handlers on app."""
    app.register_error_handler(StudioError, _studio_error)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(peewee.OperationalError, _database_down)
    app.register_error_handler(peewee.InterfaceError, _database_down)
    app.register_error_handler(Exception, _unexpected)


def _studio_error(error: StudioError):
    """A domain error, reported as it describes itself."""
    body, status = error_response(error.status, error.code, error.message, error.details)
    if status == 401:
        return body, status, {"WWW-Authenticate": 'Bearer realm="api"'}
    retry_after = error.details.get("retry_after") if isinstance(error.details, dict) else None
    if isinstance(retry_after, int) and retry_after > 0:  # a quota that frees itself in that many seconds
        return body, status, {"Retry-After": str(retry_after)}
    return body, status


def _csrf_error(error: CSRFError):
    """A form or htmx request without a valid CSRF token."""
    return error_response(400, "csrf_failed", "The form expired or was not sent from this site; reload and retry.")


def _http_error(error: HTTPException):
    """A werkzeug HTTP error (404, 405, 413…)."""
    code = HTTP_CODES.get(error.code or 500, "http_error")
    message = error.description or error.name
    if not wants_json():
        message = str(PAGE_MESSAGES.get(error.code, message))
    response = error_response(error.code or 500, code, message)
    if error.code == 405 and wants_json():
        response[0].headers["Allow"] = ", ".join(error.valid_methods or [])
    return response


def _database_down(error: Exception):
    """The database could not be reached."""
    log.error("database unavailable: %s", error)
    unavailable = ServiceUnavailable("The database is unavailable; try again shortly.")
    return _studio_error(unavailable)


def _unexpected(error: Exception):
    """Anything else: logged with its traceback, reported without internals."""
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(500, "internal_error", "Something went wrong on our side.")
