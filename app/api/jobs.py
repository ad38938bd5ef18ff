"""Job routes of the API: create, list, read, cancel, events, artifacts, and the backends they run on."""
from __future__ import annotations

from flask import jsonify, request, url_for

from app.api import schemas
from app.api.auth import current_api_user
from app.api.blueprint import bp
from app.downloads import artifact_response
from app.errors import ValidationFailed
from app.extensions import get_job_context, get_settings, get_store
from app.jobs import artifacts, capacity, gpu_budget, log_overflow, service, submission
from app.models import Artifact, Dataset, Job, JobEvent
from app.pagination import int_arg, page_request, paginate
from app.security import expensive, polling

MAX_EVENTS = 500
JOB_FIELDS = ("name", "dataset_id", "validation_dataset_id", "base_model", "method", "backend", "preset",
              "hyperparameters", "ignore_memory_warning", "sample_count", "sample_prompts", "init_from")


def job_request_from(payload: dict) -> service.JobRequest:
    """A JobRequest from a JSON object; unknown or mistyped fields are named."""
    unknown = sorted(set(payload) - set(JOB_FIELDS))
    if unknown:
        raise ValidationFailed("Unknown fields.", details={name: "not a job field" for name in unknown})
    problems = {name: "must be a string" for name in ("name", "base_model", "method", "backend", "preset")
                if payload.get(name) is not None and not isinstance(payload[name], str)}
    if not isinstance(payload.get("ignore_memory_warning", False), bool):
        problems["ignore_memory_warning"] = "must be true or false"
    if problems:
        raise ValidationFailed("The job has invalid fields.", details=problems)
    values = {name: payload[name] for name in JOB_FIELDS if payload.get(name) is not None}
    values.setdefault("name", "")
    values.setdefault("base_model", "")
    return service.JobRequest(**{"dataset_id": None, **values})


def json_body() -> dict:
    """The request's JSON object; ValidationFailed otherwise."""
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        raise ValidationFailed("Send the job as a JSON object.", details={"field": "body"})
    return payload


@bp.post("/jobs")
@expensive
def create_job():
    """Check and queue a fine-tuning job; 201 with the job and its GPU-time estimate (warning past the quota)."""
    ctx = get_job_context()
    job = submission.submit_job(ctx, current_api_user(), job_request_from(json_body()))
    estimate = gpu_budget.estimate_for(job.base_model, job.method, job.dataset, job.hyperparameters,
                                       ctx.backend(job.backend).gpus)
    response = jsonify({**schemas.job_dict(job),
                        "gpu_estimate": gpu_budget.summary(ctx, job.owner_id, job.backend, estimate)})
    response.headers["Location"] = url_for("api.get_job", job_id=job.id)
    return response, 201


@bp.post("/jobs/estimate")
def estimate_job():
    """A job's GPU time on the backend (T4s) against the user's quota left, before submitting it; nothing is made."""
    request_ = job_request_from(json_body())
    owner, ctx = current_api_user(), get_job_context()
    backend = request_.backend or next(iter(ctx.enabled_backends()))
    hyperparameters = service.check_hyperparameters(request_.preset, request_.hyperparameters, problems := {})
    dataset = Dataset.get_or_none((Dataset.id == request_.dataset_id) & (Dataset.owner == owner.id)) \
        if isinstance(request_.dataset_id, int) else None
    if dataset is None:
        problems["dataset_id"] = "No such dataset among yours."
    if problems:
        raise ValidationFailed("The job has invalid fields.", details=problems)
    if backend not in ctx.enabled_backends():
        return jsonify(gpu_estimate=None)
    estimate = gpu_budget.estimate_for(request_.base_model, request_.method, dataset, hyperparameters,
                                       ctx.backend(backend).gpus)
    return jsonify(gpu_estimate=gpu_budget.summary(ctx, owner.id, backend, estimate))


@bp.get("/jobs")
def list_jobs():
    """The user's jobs, newest first, optionally of one status."""
    result = service.list_jobs(current_api_user(), request.args.get("status") or None,
                               page_request(request.args, numbered=True), get_settings().list_count_limit)
    return jsonify(data=[schemas.job_dict(j) for j in result.items], meta=result.meta())


@bp.get("/backends")
def list_backends():
    """The training backends: enabled, configured, the user's jobs running, and their GPU quota this week."""
    return jsonify(data=capacity.backend_summaries(get_job_context(), current_api_user()))


@bp.get("/jobs/<int:job_id>")
@polling
def get_job(job_id: int):
    """One of the user's jobs with its progress."""
    return jsonify(schemas.job_dict(Job.get_owned(job_id, current_api_user())))


@bp.post("/jobs/<int:job_id>/cancel")
def cancel_job(job_id: int):
    """Ask the job to stop; 202 with the job (cancelled once its backend confirms)."""
    job = submission.cancel_job(get_job_context(), Job.get_owned(job_id, current_api_user()))
    return jsonify(schemas.job_dict(job)), 202


@bp.get("/jobs/<int:job_id>/events")
@polling
def list_job_events(job_id: int):
    """The job's events after the given id, oldest first."""
    job = Job.get_owned(job_id, current_api_user())
    after = int_arg(request.args, "after", 0, minimum=0)
    limit = int_arg(request.args, "limit", MAX_EVENTS, maximum=MAX_EVENTS)
    events = (JobEvent.select().where((JobEvent.job == job.id) & (JobEvent.id > after))
              .order_by(JobEvent.id).limit(limit))
    data = [schemas.event_dict(e) for e in events]
    return jsonify(data=data, meta={"after": after, "last_id": data[-1]["id"] if data else after})


@bp.get("/jobs/<int:job_id>/log-overflow")
def list_job_log_overflow(job_id: int):
    """The job's log lines past JOB_LOG_EVENT_CAP, read from their compressed artifacts, after a line number."""
    job = Job.get_owned(job_id, current_api_user())
    after = int_arg(request.args, "after", 0, minimum=0)
    limit = int_arg(request.args, "limit", MAX_EVENTS, maximum=MAX_EVENTS)
    lines = log_overflow.read_lines(get_store(), job, after, limit)
    return jsonify(data=lines, meta={"after": after, "last_line": lines[-1]["line"] if lines else after})


@bp.get("/jobs/<int:job_id>/artifacts")
def list_job_artifacts(job_id: int):
    """The files the job produced."""
    job = Job.get_owned(job_id, current_api_user())
    result = paginate(Artifact.select().where(Artifact.job == job.id), Artifact.id,
                      page_request(request.args, numbered=True), get_settings().list_count_limit)
    return jsonify(data=[schemas.artifact_dict(a, job.id) for a in result.items], meta=result.meta())


@bp.get("/jobs/<int:job_id>/artifacts/<path:name>")
def download_job_artifact(job_id: int, name: str):
    """Stream one artifact from object storage as a download."""
    return artifact_response(artifacts.get_artifact(Job.get_owned(job_id, current_api_user()), name))
