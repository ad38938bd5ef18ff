"""Result routes of the job pages: the results section (a self-polling widget) and the whole-archive download."""
from __future__ import annotations

from flask import Blueprint, make_response, render_template, request
from flask_login import current_user, login_required

from app.downloads import archive_response
from app.extensions import get_store
from app.models import Job
from app.security import polling
from app.web.live import adopt_user, etag_of, is_current, not_modified, refuse, session_user_id, versioned
from app.web.results import views

bp = Blueprint("results", __name__, url_prefix="/jobs")


@bp.get("/<int:job_id>/results")
@polling
def panel(job_id: int):
    """The samples, checkpoints and accuracy of a job; it asks again every few seconds until the job ends: a 304
    after one query while neither its status nor its evaluations moved (training steps change nothing here)."""
    job = views.results_job(job_id, session_user_id())
    if job is None:
        refuse(Job, job_id)
    adopt_user(job.owner)
    etag = etag_of(job.id, job.status, job.total_steps, job.last_eval)
    if is_current(etag):
        return not_modified(etag)
    body = render_template("results/_results.html", **views.results_panel(get_store(), job))
    return versioned(make_response(body), etag)


@bp.get("/<int:job_id>/artifacts.zip")
@login_required
def archive(job_id: int):
    """Every artifact of the job (or those under ?prefix=) as one streamed zip."""
    return archive_response(Job.get_owned(job_id, current_user), request.args.get("prefix", ""))
