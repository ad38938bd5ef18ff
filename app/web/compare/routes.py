"""The compare page: pick two to five of your jobs, see them side by side."""
from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_login import current_user, login_required

from app.errors import ValidationFailed
from app.extensions import get_store
from app.models import Job
from app.web.compare import views

bp = Blueprint("compare", __name__, url_prefix="/compare")
PICKER_JOBS = 50


@bp.get("")
@login_required
def page():
    """The picker, and the comparison once two to five jobs are chosen (?jobs=1&jobs=2 or ?jobs=1,2)."""
    recent = list(Job.select(Job.id, Job.name, Job.status).where(Job.owner == current_user.id)
                  .order_by(Job.id.desc()).limit(PICKER_JOBS))
    try:
        jobs = views.chosen_jobs(current_user, request.args.getlist("jobs"))
    except ValidationFailed:
        return render_template("compare/page.html", recent=recent, chosen=[], too_many=True), 422
    context = views.comparison(get_store(), jobs) if len(jobs) >= views.MIN_JOBS else {}
    return render_template("compare/page.html", recent=recent, chosen=[job.id for job in jobs], **context)
