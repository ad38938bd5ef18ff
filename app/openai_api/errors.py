"""Errors as OpenAI sends them: `{"error": {"message", "type", "param", "code"}}` with the status its client
maps to a typed exception. 422 and 409 become 400, as OpenAI reports bad input and a request the object's state
forbids (cancelling a finished job) as `invalid_request_error`; its client would also retry a 409."""
from __future__ import annotations

from flask import jsonify

TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}
# Our field names as the dialect's clients know them.
PARAMS = {"dataset_id": "training_file", "validation_dataset_id": "validation_file", "base_model": "model",
          "hyperparameters.epochs": "hyperparameters.n_epochs"}


def openai_error_response(status: int, code: str, message: str, details=None):
    """The error in OpenAI's format, with the status its client expects."""
    status = 400 if status in (409, 422) else status
    kind = "server_error" if status >= 500 else TYPES.get(status, "invalid_request_error")
    param = _param(details)
    if isinstance(details, dict) and param and isinstance(details.get(param), str) and param != "field":
        message = f"{message} {PARAMS.get(param, param)}: {details[param]}"
    body = {"error": {"message": message, "type": kind, "param": PARAMS.get(param, param), "code": code}}
    return jsonify(body), status


def _param(details) -> str | None:
    """The request field an error is about, when its details name one."""
    if not isinstance(details, dict) or not details:
        return None
    if isinstance(details.get("field"), str):
        return details["field"]
    return next(iter(details))
