"""The dialect's blueprint under /v1: bearer tokens only (the Studio's own API tokens), no cookies, no CSRF."""
from __future__ import annotations

from flask import Blueprint, g, request

from app.auth import service
from app.errors import Unauthorized
from app.extensions import csrf

bp = Blueprint("openai", __name__, url_prefix="/v1")
csrf.exempt(bp)

PUBLIC_ENDPOINTS = {"openai.openapi"}


@bp.before_request
def require_token():
    """Set g.user from the Authorization header, or refuse with 401."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    user = service.user_for_authorization(request.headers.get("Authorization", ""))
    if user is None:
        raise Unauthorized("Incorrect API key provided: send a Studio API token as the client's api_key.",
                           details={"field": "api_key"})
    g.user = user


def current_user():
    """The user the request's token belongs to."""
    return g.user
