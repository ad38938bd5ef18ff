"""Job pages: the list, the new-job form with its memory estimate, the detail page with live progress."""
from __future__ import annotations

from flask import Blueprint, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app import catalog
from app.downloads import artifact_response
from app.errors import ValidationFailed
from app.extensions import get_job_context, get_settings
from app.htmx import STOP_POLLING, is_htmx, wants_widget
from app.jobs import artifacts, backends, service, states, submission
from app.models import Job
from app.pagination import page_request
from app.security import expensive, polling
from app.web import messages
from app.web.jobs import forms, live, views
from app.web.live import adopt_user, etag_of, is_current, not_modified, refuse, session_user_id, versioned

bp = Blueprint("jobs", __name__, url_prefix="/jobs")


@bp.app_template_filter("method_label")
def method_label_filter(method: str) -> str:
    """LoRA, QLoRA or Full."""
    return forms.METHOD_CHOICES[method].label if method in forms.METHOD_CHOICES else method


@bp.app_template_filter("backend_label")
def backend_label_filter(name: str) -> str:
    """How the pages name a backend (its registry label), the name itself for one this Studio no longer has."""
    try:
        return messages.translate(backends.get(name).label)
    except KeyError:
        return name


@bp.app_template_filter("hyperparameter_label")
def hyperparameter_label_filter(name: str) -> str:
    """How the form labels a hyperparameter; its name, spaced, for one the form does not show."""
    return str(forms.BY_NAME[name].label) if name in forms.BY_NAME else name.replace("_", " ")


@bp.get("")
@login_required
def index():
    """The user's jobs, filtered by status and searched by name, a page at a time."""
    status, query = request.args.get("status") or None, request.args.get("q", "").strip()
    result = service.list_jobs(current_user, status, page_request(request.args), get_settings().list_count_limit,
                               name_contains=query)
    template = "jobs/_table.html" if wants_widget("job-table") else "jobs/index.html"
    progress = {job.id: views.progress_of(job) for job in result.items}
    return render_template(template, page=result, progress=progress, q=query, status=status, statuses=states.ALL)


@bp.get("/new")
@login_required
def new():
    """The new-job form; when htmx picks a preset, only the preset's hyperparameters (and the new estimate)."""
    backends = views.backend_choices(get_job_context(), current_user.id)
    values = forms.initial_values(request.args, [choice.name for choice in backends])
    if wants_widget("hyperparameters"):
        return render_template("jobs/_preset_update.html", **form_context(values, {}, backends))
    return render_form(values, {}, backends)


@bp.post("")
@expensive
@login_required
def create():
    """Queue the job the form describes, or show the form again with each problem by its field."""
    try:
        job = submission.submit_job(get_job_context(), current_user, forms.job_request(request.form))
    except ValidationFailed as error:
        return render_form(forms.posted_values(request.form), forms.field_errors(error),
                           views.backend_choices(get_job_context(), current_user.id), 422)
    flash(_("Job “%(name)s” queued.", name=job.name), "success")
    target = url_for("jobs.detail", job_id=job.id)
    if is_htmx():
        return "", 201, {"HX-Location": target}
    return redirect(target, 303)


def render_form(values: dict, errors: dict, backends: list, status: int = 200):
    """The form as a page, or only the form for htmx."""
    template = "jobs/_form.html" if wants_widget("job-form") else "jobs/new.html"
    context = form_context(values, errors, backends)
    return render_template(template, datasets=views.ready_datasets(current_user), **context), status


def form_context(values: dict, errors: dict, backends: list) -> dict:
    """What the form's templates need besides the datasets."""
    return dict(values=values, errors=errors, backends=backends, models=catalog.CATALOG, fields=forms.FIELDS,
                methods=forms.METHOD_CHOICES.values(), presets=forms.PRESET_CHOICES, estimate=estimate_of(values),
                gpu_time=views.gpu_time_for(get_job_context(), current_user.id, values))


def estimate_of(values) -> views.EstimateView:
    """The memory estimate of the form's values, against the chosen backend's GPU."""
    name = values.get("backend") or ""
    gpu_gb = backends.get(name).gpu_gb if name in backends.names() else None
    return views.estimate_for(values.get("base_model", ""), values.get("method", ""), values.get("max_seq_length"),
                              values.get("batch_size"), values.get("lora_r"), gpu_gb,
                              bool(values.get("gradient_checkpointing", True)), adapter=values.get("adapter") or "lora",
                              reference_free=bool(values.get("reference_free")))


@bp.get("/new/estimate")
@login_required
def estimate():
    """The memory estimate widget for the values the form holds now (sent like the form: unchecked boxes absent)."""
    values = forms.posted_values(request.args)
    return render_template("jobs/_estimate.html", estimate=estimate_of(values), errors={}, values=values,
                           gpu_time=views.gpu_time_for(get_job_context(), current_user.id, values))


@bp.get("/<int:job_id>")
@login_required
def detail(job_id: int):
    """One job: its settings, live progress, loss chart, log and artifacts."""
    job = owned_live_job(job_id, current_user.id)
    return render_template("jobs/detail.html", job=job, cursor=live.Cursor.of(job), **views.job_panel(job))


def owned_live_job(job_id: int, user_id: int, polled: bool = False) -> Job:
    """The user's job with its live marks (live.live_job); for anyone else, what any page answers."""
    job = live.live_job(job_id, user_id, polled)
    if job is None:
        refuse(Job, job_id)
    return job


@bp.get("/<int:job_id>/progress")
@polling
def progress(job_id: int):
    """The live widgets, polled while the job is active: 304 while nothing changed (one query), else only what
    did (at most three); 286 stops the polling once the job is over."""
    cursor = live.Cursor.from_args(request.args)
    job = owned_live_job(job_id, session_user_id(), polled=True)
    adopt_user(job.owner)
    etag = etag_of(*live.etag_parts(job, cursor))
    if is_current(etag):
        return not_modified(etag)
    status = 200 if job.status in states.ACTIVE else STOP_POLLING
    body = render_template("jobs/_changes.html", job=job, changes=live.changes_since(job, cursor))
    return versioned(make_response(body, status), etag)


@bp.get("/<int:job_id>/artifacts")
@login_required
def artifact_list(job_id: int):
    """The artifacts widget, which a poll asks to reload itself when the job's files (or its ending) changed."""
    job = Job.get_owned(job_id, current_user)
    return render_template("jobs/_artifacts.html", job=job, artifacts=artifacts.list_artifacts(job))


@bp.post("/<int:job_id>/cancel")
@login_required
def cancel(job_id: int):
    """Ask the job to stop; htmx gets the live widgets back, a plain form the page."""
    job = submission.cancel_job(get_job_context(), Job.get_owned(job_id, current_user))
    flash(_("Job cancelled.") if job.status == states.CANCELLED else _("Cancel requested: the run stops in a moment."),
          "success")
    if is_htmx():
        job = owned_live_job(job_id, current_user.id)
        return render_template("jobs/_live.html", job=job, cursor=live.Cursor.of(job), with_flash=True,
                               **views.job_panel(job))
    return redirect(url_for("jobs.detail", job_id=job.id), 303)


@bp.get("/<int:job_id>/artifacts/<path:name>")
@login_required
def download_artifact(job_id: int, name: str):
    """Stream one of the job's files as a download."""
    return artifact_response(artifacts.get_artifact(Job.get_owned(job_id, current_user), name))
