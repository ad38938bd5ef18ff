"""Job routes of the API: create, list, read, cancel, events, artifacts."""
from __future__ import annotations

from flask import Response, current_app, jsonify, request, stream_with_context, url_for

from app.api import bp, schemas
from app.api.auth import current_api_user
from app.errors import NotFound, ValidationFailed
from app.extensions import get_store
from app.jobs import capacity, submission
from app.jobs.context import JobContext
from app.jobs.service import list_jobs as list_user_jobs
from app.models import Artifact, Job, JobEvent
from app.pagination import int_arg, page_args
from app.security import expensive, polling
from app.storage import attachment_disposition

MAX_EVENTS = 500


@bp.post("/jobs")
@expensive
def create_job():
    """Check and queue a fine-tuning job; 201 with the job."""
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        raise ValidationFailed("Send the job as a JSON object.", details={"field": "body"})
    job = submission.submit_job(current_api_user(), submission.request_from(payload))
    response = jsonify(schemas.job_dict(job))
    response.headers["Location"] = url_for("api.get_job", job_id=job.id)
    return response, 201


@bp.get("/jobs")
def list_jobs():
    """The user's jobs, newest first, optionally of one status."""
    page, per_page = page_args(request.args)
    result = list_user_jobs(current_api_user(), request.args.get("status") or None, page, per_page)
    return jsonify(data=[schemas.job_dict(j) for j in result.items], meta=result.meta())


@bp.get("/backends")
def list_backends():
    """The training backends: enabled, configured, jobs running, and Kaggle's GPU quota this week."""
    return jsonify(data=capacity.backend_summaries(JobContext.from_app(current_app)))


@bp.get("/jobs/<int:job_id>")
@polling
def get_job(job_id: int):
    """One of the user's jobs with its progress."""
    return jsonify(schemas.job_dict(Job.get_owned(job_id, current_api_user())))


@bp.post("/jobs/<int:job_id>/cancel")
def cancel_job(job_id: int):
    """Ask the job to stop; 202 with the job (cancelled once its backend confirms)."""
    job = submission.cancel_job(Job.get_owned(job_id, current_api_user()))
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


@bp.get("/jobs/<int:job_id>/artifacts")
def list_job_artifacts(job_id: int):
    """The files the job produced."""
    job = Job.get_owned(job_id, current_api_user())
    artifacts = Artifact.select().where(Artifact.job == job.id).order_by(Artifact.name)
    return jsonify(data=[schemas.artifact_dict(a, job.id) for a in artifacts])


@bp.get("/jobs/<int:job_id>/artifacts/<path:name>")
def download_job_artifact(job_id: int, name: str):
    """Stream one artifact from object storage as a download."""
    job = Job.get_owned(job_id, current_api_user())
    artifact = Artifact.get_or_none((Artifact.job == job.id) & (Artifact.name == name))
    if artifact is None:
        raise NotFound("artifact not found")
    return artifact_response(artifact)


def artifact_response(artifact: Artifact) -> Response:
    """The artifact's bytes, streamed, with its size and a download file name."""
    chunks = get_store().iter_chunks(artifact.object_key)
    response = Response(stream_with_context(chunks), mimetype="application/octet-stream")
    response.headers["Content-Length"] = str(artifact.size_bytes)
    response.headers["Content-Disposition"] = attachment_disposition(artifact.name.rsplit("/", 1)[-1])
    response.call_on_close(chunks.close)
    return response
