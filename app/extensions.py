"""The extensions, created unbound here and bound to the app in init_app."""
from __future__ import annotations

from flask import Flask, current_app
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

from app import static_files
from app.htmx import add_vary_header
from app.storage import ObjectStore, make_store

csrf = CSRFProtect()
login_manager = LoginManager()


def init_app(app: Flask) -> None:
    """Bind CSRF protection, the session login, the object store, the htmx Vary header and static fingerprints."""
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message_category = "info"
    login_manager.user_loader(_load_user)
    app.extensions["store"] = make_store(app.extensions["settings"])
    app.after_request(add_vary_header)
    static_files.init_app(app)


def _load_user(user_id: str):
    """The active user whose id the session holds."""
    from app.models import User

    try:
        return User.get_or_none((User.id == int(user_id)) & User.is_active)
    except ValueError:
        return None


def get_store() -> ObjectStore:
    """The object store of the current app."""
    return current_app.extensions["store"]


def get_settings():
    """The settings of the current app."""
    return current_app.extensions["settings"]
