"""Bearer-token authentication for every API route except the public ones."""
from __future__ import annotations

from flask import g, request

from app.api.blueprint import bp
from app.auth import service
from app.errors import Unauthorized
from app.extensions import csrf

# The API takes no cookies, only bearer tokens, so cross-site requests cannot ride a session.
csrf.exempt(bp)

PUBLIC_ENDPOINTS = {"api.openapi"}


@bp.before_request
def require_token():
    """Set g.user from the Authorization header, or refuse with 401."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    user = service.user_for_authorization(request.headers.get("Authorization", ""))
    if user is None:
        raise Unauthorized("Send a valid API token as 'Authorization: Bearer <token>'.")
    g.user = user


def current_api_user():
    """The user the request's token belongs to."""
    return g.user
