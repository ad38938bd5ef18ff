"""Task functions run by the workers: thin, they take ids and call app services."""
from __future__ import annotations

import os

from flask import current_app

from app.models import User


def probe() -> dict:
    """A trivial job proving a worker reaches the app, its database and Redis."""
    return {"pid": os.getpid(), "app": current_app.name, "users": User.select().count()}
