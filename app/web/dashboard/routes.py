"""Dashboard page and its widgets: running jobs (polled), GPU quota and service health (loaded lazily)."""
from __future__ import annotations

from flask import Blueprint, current_app, make_response, render_template
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.db import database
from app.errors import NotFound
from app.extensions import get_job_context, get_redis, get_settings, get_store
from app.htmx import STOP_POLLING
from app.jobs import capacity
from app.queue import watched_queues
from app.security import polling
from app.web.dashboard import views
from app.web.jobs.views import progress_of, running_jobs_of
from app.web.live import adopt_user, etag_of, is_current, not_modified, session_user_id, versioned

bp = Blueprint("web", __name__)


@bp.get("/")
@login_required
def dashboard():
    """Running jobs, counts by status, what happened recently; quota and health load after the page."""
    running = [(job, progress_of(job)) for job in running_jobs_of(current_user.id)]
    return render_template("web/dashboard.html", running=running, quota_backends=quota_backends(),
                           **views.dashboard_summary(current_user))


@bp.get("/dashboard/running")
@polling
def running_jobs():
    """The running-jobs widget, polled while something runs: 304 after one query while none of them moved;
    286 once nothing runs."""
    jobs = running_jobs_of(session_user_id(), with_owner=True)
    if not jobs:  # nothing runs (or the user is no longer active): Flask-Login's usual check decides
        if not current_user.is_authenticated:
            return current_app.login_manager.unauthorized()
        return render_template("web/_running.html", running=[]), STOP_POLLING
    adopt_user(jobs[0].owner)
    etag = etag_of(*(views.shown_version(job) for job in jobs))
    if is_current(etag):
        return not_modified(etag)
    body = render_template("web/_running.html", running=[(job, progress_of(job)) for job in jobs])
    return versioned(make_response(body), etag)


def quota_backends() -> list:
    """The enabled backends that keep a GPU quota (Kaggle)."""
    return [backend for backend in get_job_context().enabled_backends().values() if backend.reports_quota]


@bp.get("/dashboard/quota")
@login_required
def gpu_quota():
    """The GPU quota this week of the user's own account on each enabled backend (cached five minutes; "unknown"
    when it does not answer fast)."""
    backends = quota_backends()
    if not backends:
        raise NotFound(_("No enabled training backend keeps a GPU quota (TRAINING_BACKENDS)."))
    ctx, owner_id = get_job_context(), current_user.id
    quotas = [(backend, backend.configuration_problems(owner_id)) for backend in backends]
    quotas = [(backend, problems, None if problems else capacity.quota(ctx, backend.name, owner_id))
              for backend, problems in quotas]
    return render_template("web/_quota.html", quotas=quotas)


@bp.get("/dashboard/health")
@login_required
def service_health():
    """Each service the Studio needs, up or down, with its latency."""
    document = views.service_health(database, get_store(), get_redis(), watched_queues(get_settings().queue_names))
    return render_template("web/_health.html", health=document)
