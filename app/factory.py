"""The application factory: settings → logging → database → security → extensions → queue → metrics → blueprints
→ error handlers → CLI."""
from __future__ import annotations

import click
from flask import Flask

from app import __version__, cli, db, error_handlers, extensions, i18n, logs, metrics, queue, security
from app.api.routes import bp as api_bp
from app.logs import configure_logging
from app.openai_api.routes import bp as openai_bp
from app.ops.routes import bp as ops_bp
from app.settings import PROJECT_ROOT, Settings
from app.web import formatting, labels, messages
from app.web.admin.routes import bp as admin_bp
from app.web.auth.routes import bp as auth_bp
from app.web.compare.routes import bp as compare_bp
from app.web.dashboard.routes import bp as web_bp
from app.web.datasets.routes import bp as datasets_bp
from app.web.jobs.routes import bp as jobs_bp
from app.web.language.routes import bp as language_bp
from app.web.playground.routes import bp as playground_bp
from app.web.results.routes import bp as results_bp
from app.web.webhooks.routes import bp as webhooks_bp
from app.webhooks import runtime as webhooks_runtime


# A ClickException, so `flask` commands (check-config among them) print the report without a traceback.
class ConfigurationError(click.ClickException):
    """The environment describes a configuration the Studio refuses to run with."""

    def __init__(self, problems: list[str]):
        super().__init__("Refusing to start; fix these settings:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app: settings → logging → extensions → blueprints → CLI, nothing else."""
    settings = settings or Settings()
    if settings.is_production and settings.problems():
        raise ConfigurationError(settings.problems())

    app = Flask(
        __package__,  # "app": the name gunicorn, logs and tests know it by
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    configure(app, settings)
    configure_logging(settings)
    # First, so that every request has its id and its log line, whatever answers it.
    logs.init_app(app)
    db.init_app(app)
    # Before CSRF and authentication, so redirects and rate limits come first (error pages need the database).
    security.init_app(app)
    extensions.init_app(app)
    i18n.init_app(app)
    queue.init_app(app)
    webhooks_runtime.init_app(app)
    metrics.init_app(app)
    register_blueprints(app)
    formatting.init_app(app)
    labels.init_app(app)
    messages.init_app(app)
    error_handlers.init_app(app)
    cli.init_app(app)
    return app


def configure(app: Flask, settings: Settings) -> None:
    """Copy the settings into Flask's config and bind the database."""
    app.extensions["settings"] = settings
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="studio_session",
        # The CSRF token lives as long as the session, so a page left open does not go stale.
        WTF_CSRF_TIME_LIMIT=None,
        VERSION=__version__,
    )
    db.bind(db.make_database(settings.resolved_database_url, settings.db_pool_size, settings.db_pool_timeout))


def register_blueprints(app: Flask) -> None:
    """Attach one blueprint per area."""
    for blueprint in (web_bp, auth_bp, datasets_bp, jobs_bp, admin_bp, results_bp, compare_bp, playground_bp,
                      language_bp, webhooks_bp, api_bp, openai_bp, ops_bp):
        app.register_blueprint(blueprint)
