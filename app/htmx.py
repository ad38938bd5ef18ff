"""Small helpers for answering htmx requests."""
from __future__ import annotations

from flask import request

# htmx stops polling when a response carries this status.
STOP_POLLING = 286


def is_htmx() -> bool:
    """Whether htmx sent this request (and wants a partial back); history restores want the full page."""
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-History-Restore-Request") != "true"


def add_vary_header(response):
    """Partials and full pages share URLs, so caches must key on HX-Request."""
    response.vary.add("HX-Request")
    return response


def wants_widget(element_id: str) -> bool:
    """Whether htmx asked for one widget of the page (its id is the request's target), not the whole page."""
    return is_htmx() and request.headers.get("HX-Target") == element_id
