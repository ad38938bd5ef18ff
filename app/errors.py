"""Domain errors: each carries the code, message and HTTP status the edges report."""
from __future__ import annotations


class StudioError(Exception):
    """Base of every error a user can be told about."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, details=None):
        super().__init__(message)
        self.message = message
        self.details = details


class ValidationFailed(StudioError):
    """Input was malformed; details name the field or line."""

    status = 422
    code = "validation_failed"


class Unauthorized(StudioError):
    """No valid credentials were given."""

    status = 401
    code = "unauthorized"


class NotFound(StudioError):
    """The object does not exist, or belongs to someone else."""

    status = 404
    code = "not_found"


class Conflict(StudioError):
    """The object is in a state that forbids the request."""

    status = 409
    code = "conflict"


class PayloadTooLarge(StudioError):
    """The body (an upload) is bigger than its limit."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(StudioError):
    """The body is not in a format the endpoint takes."""

    status = 415
    code = "unsupported_media_type"


class ServiceUnavailable(StudioError):
    """A service the request needs is down."""

    status = 503
    code = "service_unavailable"
