"""Polled widgets that answer from a version: an ETag of what the widget shows, 304 while it is current.

A poll reads the version in one indexed query, with the signed-in user joined in (so Flask-Login needs no query
of its own); a browser that holds the widget's answer sends its ETag back by itself (`Cache-Control: no-cache`
makes it revalidate every time), and an unchanged widget costs that query and an empty 304.
"""
from __future__ import annotations

import hashlib

from flask import Response, abort, current_app, request, session
from flask_babel import get_locale
from flask_login import current_user

from app import __version__
from app.models import User

# Revalidate on every use, and only in the browser: the answer belongs to one signed-in user.
CACHE_CONTROL = "no-cache, private"


def session_user_id() -> int:
    """The signed-in user's id as the session holds it, without loading the user (the poll's query checks them).

    A request without one in its session (signed out, or carried by a remember cookie) goes through Flask-Login:
    redirected to sign in, or loaded the usual way.
    """
    raw = session.get("_user_id")
    if raw is not None and str(raw).isdigit():
        return int(raw)
    if not current_user.is_authenticated:
        abort(current_app.login_manager.unauthorized())
    return current_user.id


def refuse(model, object_id: int):
    """End a poll for a row its query did not find: sign in again (a user deactivated or signed out), else 404."""
    if not current_user.is_authenticated:
        abort(current_app.login_manager.unauthorized())
    model.get_owned(object_id, current_user)  # NotFound, unless the row appeared meanwhile
    abort(404)


def adopt_user(user) -> None:
    """Make the user a poll's query loaded (active, the session's) this request's current_user: no second query."""
    current_app.login_manager._update_request_context_with_user(user)


def owned_rows(query, model, user_id: int):
    """query (of model's rows) narrowed to the user's own, the owner joined in and required to be active."""
    return (query.select_extend(*User._meta.sorted_fields).join(User, on=(model.owner == User.id))
            .where((model.owner == user_id) & User.is_active))


def etag_of(*parts) -> str:
    """The ETag of a widget drawn from parts (with the app's version and the page language, which change it too)."""
    text = repr((__version__, str(get_locale()), parts))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def is_current(etag: str) -> bool:
    """Whether the request's If-None-Match already names this version (weakly: nginx's gzip weakens ETags)."""
    return request.if_none_match.contains_weak(etag)


def not_modified(etag: str) -> Response:
    """The empty 304 that tells the browser its copy of the widget is current."""
    return versioned(Response(status=304), etag)


def versioned(response: Response, etag: str) -> Response:
    """The widget's answer, marked with its version and to be revalidated on every poll."""
    response.set_etag(etag, weak=True)
    response.headers["Cache-Control"] = CACHE_CONTROL
    return response
