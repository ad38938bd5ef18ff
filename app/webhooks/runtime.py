"""Tell the outbox how this process reaches Redis: through the current app, whichever it is."""
from __future__ import annotations

from flask import Flask, current_app, has_app_context

from app.webhooks import outbox


def _app_redis():
    """The Redis client of the app in context, None outside one."""
    return current_app.extensions["redis"] if has_app_context() else None


def init_app(app: Flask) -> None:
    """Point the outbox at the current app's Redis (after queue.init_app has made the client)."""
    outbox.current_redis = _app_redis
