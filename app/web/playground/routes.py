"""The playground page: ask the tuned (and the base) model, and watch each answer grow as its tokens arrive."""
from __future__ import annotations

from flask import Blueprint, make_response, render_template, request
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.errors import StudioError
from app.extensions import enqueue, get_job_context, get_settings
from app.models import Completion, Job
from app.playground.requests import request_completion
from app.security import polling
from app.web.live import adopt_user, etag_of, is_current, not_modified, owned_rows, refuse, session_user_id, versioned

bp = Blueprint("playground", __name__, url_prefix="/jobs")


def payloads_from(form) -> list[dict]:
    """The completions the form asks for: the tuned model's, and the base model's beside it when ticked."""
    messages = [{"role": "system", "content": form["system"]}] if form.get("system", "").strip() else []
    messages.append({"role": "user", "content": form.get("message", "")})
    values = {"messages": messages, "max_tokens": _number(form.get("max_tokens"), int),
              "temperature": _number(form.get("temperature"), float)}
    return [{**values, "adapter": True}, *([{**values, "adapter": False}] if form.get("with_base") else [])]


def _number(text, kind):
    """The form's number, or the text itself (the service names it as invalid)."""
    try:
        return kind(text)
    except (TypeError, ValueError):
        return text


@bp.get("/<int:job_id>/playground")
@login_required
def page(job_id: int):
    """The playground of one job."""
    job = Job.get_owned(job_id, current_user)
    return render_template("playground/page.html", job=job, max_tokens_cap=get_settings().playground_max_tokens)


@bp.post("/<int:job_id>/playground")
@login_required
def ask(job_id: int):
    """Queue the completions the form asks for; htmx gets the new turn with a live widget per answer."""
    job = Job.get_owned(job_id, current_user)
    try:
        completions = [request_completion(get_job_context(), current_user, job, payload, enqueue)
                       for payload in payloads_from(request.form)]
    except StudioError as error:  # shown in place: htmx would not swap an error status
        return render_template("playground/_refused.html", error=error, fallback=_("The request was refused."))
    return render_template("playground/_turn.html", job=job, completions=completions)


@bp.get("/<int:job_id>/playground/<int:completion_id>")
@polling
def completion(job_id: int, completion_id: int):
    """One answer as far as it got; it asks again until it is finished (a 304 after one query while no new token
    came, app/web/live.py)."""
    found = (owned_rows(Completion.select(), Completion, session_user_id())
             .where((Completion.id == completion_id) & (Completion.job == job_id)).first())
    if found is None:
        refuse(Job, job_id)  # sign in again, or 404 (another's job, or no such completion of theirs)
    adopt_user(found.owner)
    etag = etag_of(found.id, found.status, found.tokens, len(found.text), found.error, str(found.finished_at))
    if is_current(etag):
        return not_modified(etag)
    return versioned(make_response(render_template("playground/_completion.html", completion=found)), etag)
