"""Dashboard page and its widgets: running jobs (polled), Kaggle's GPU quota and service health (loaded lazily)."""
from __future__ import annotations

from flask import current_app, render_template
from flask_login import current_user, login_required

from app.db import database
from app.errors import NotFound
from app.extensions import get_settings, get_store
from app.htmx import STOP_POLLING
from app.jobs import capacity, views
from app.jobs.context import JobContext
from app.queue import get_redis
from app.security import polling
from app.web import bp, service


@bp.get("/")
@login_required
def dashboard():
    """Running jobs, counts by status, what happened recently; quota and health load after the page."""
    running = [(job, views.progress_of(job)) for job in views.running_jobs(current_user)]
    return render_template("web/dashboard.html", running=running,
                           kaggle_enabled="kaggle" in get_settings().backend_names,
                           **service.dashboard_summary(current_user))


@bp.get("/dashboard/running")
@polling
@login_required
def running_jobs():
    """The running-jobs widget, polled while something runs; 286 once nothing does."""
    running = [(job, views.progress_of(job)) for job in views.running_jobs(current_user)]
    return render_template("web/_running.html", running=running), 200 if running else STOP_POLLING


@bp.get("/dashboard/quota")
@login_required
def kaggle_quota():
    """Kaggle's GPU quota this week (cached five minutes; "unknown" when Kaggle does not answer quickly)."""
    ctx = JobContext.from_app(current_app)
    if "kaggle" not in ctx.settings.backend_names:
        raise NotFound("The Kaggle backend is not enabled (TRAINING_BACKENDS).")
    problems = ctx.remote("kaggle").configuration_problems()
    quota = None if problems else capacity.kaggle_quota(ctx)
    return render_template("web/_quota.html", quota=quota, problems=problems)


@bp.get("/dashboard/health")
@login_required
def service_health():
    """Each service the Studio needs, up or down, with its latency."""
    document = service.service_health(database, get_store(), get_redis(), get_settings().queue_names)
    return render_template("web/_health.html", health=document)
