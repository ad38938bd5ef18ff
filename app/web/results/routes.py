"""Result routes of the job pages: the results section (a self-polling widget) and the whole-archive download."""
from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_login import current_user, login_required

from app.downloads import archive_response
from app.extensions import get_store
from app.models import Job
from app.security import polling
from app.web.results import views

bp = Blueprint("results", __name__, url_prefix="/jobs")


@bp.get("/<int:job_id>/results")
@polling
@login_required
def panel(job_id: int):
    """The samples, checkpoints and accuracy of a job; it asks again every few seconds until the job ends."""
    job = Job.get_owned(job_id, current_user)
    return render_template("results/_results.html", **views.results_panel(get_store(), job))


@bp.get("/<int:job_id>/artifacts.zip")
@login_required
def archive(job_id: int):
    """Every artifact of the job (or those under ?prefix=) as one streamed zip."""
    return archive_response(Job.get_owned(job_id, current_user), request.args.get("prefix", ""))
