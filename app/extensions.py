"""The extensions, created unbound here and bound to the app in init_app."""
from __future__ import annotations

from flask import Flask, current_app
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect
from redis import Redis
from rq import Queue

from app import static_files
from app.htmx import add_vary_header
from app.jobs.context import JobContext
from app.logs import current_request_id
from app.models import User
from app.queue import DEFAULT_QUEUE
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


def get_redis() -> Redis:
    """The Redis client of the current app."""
    return current_app.extensions["redis"]


def get_queue(name: str = DEFAULT_QUEUE) -> Queue:
    """The RQ queue called name."""
    return Queue(name, connection=get_redis())


def enqueue(task: str, *args, queue: str = DEFAULT_QUEUE, **options):
    """Enqueue the task function named by its dotted path; options go to RQ (job_id, job_timeout…)."""
    # The job's log lines then carry the id of the request that started it.
    options["meta"] = {"request_id": current_request_id(), **options.get("meta", {})}
    return get_queue(queue).enqueue(task, *args, **options)


def get_job_context() -> JobContext:
    """The job domain's view of the current app: settings, storage, Redis and the backends."""
    return JobContext.from_app(current_app)
