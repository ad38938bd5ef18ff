"""/v1/fine_tuning/jobs: create, list, read, cancel, events and checkpoints, through the Studio's job services."""
from __future__ import annotations

from flask import jsonify, request

from app.errors import ValidationFailed
from app.extensions import get_job_context
from app.jobs import pausing, submission
from app.models import Job
from app.openai_api import ids, objects, queries
from app.openai_api.blueprint import bp, current_user
from app.openai_api.paging import limit_arg, list_body
from app.openai_api.translation import translate
from app.security import expensive, polling


def _owned(fine_tuning_job_id: str) -> Job:
    """The user's job behind a job id (`ftjob-<n>`), or 404."""
    return Job.get_owned(ids.row_id(ids.JOB, fine_tuning_job_id, "fine_tuning_job_id"), current_user())


@bp.post("/fine_tuning/jobs")
@expensive
def create_job():
    """Create a job from OpenAI's request: the same job the Studio's pages and /api/v1 show."""
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        raise ValidationFailed("Send the job as a JSON object.", details={"field": "body"})
    translated = translate(payload)
    job = submission.submit_job(get_job_context(), current_user(), translated.request)
    if translated.metadata or translated.suffix:
        job.metadata, job.suffix = translated.metadata, translated.suffix
        Job.update(metadata=job.metadata, suffix=job.suffix).where(Job.id == job.id).execute()
    return jsonify(objects.job_object(job))


@bp.get("/fine_tuning/jobs")
def list_jobs():
    """The user's jobs, newest first, paged by `after`, filtered by `metadata[key]=value`."""
    metadata = {key[len("metadata["):-1]: value for key, value in request.args.items()
                if key.startswith("metadata[") and key.endswith("]")}
    after = ids.cursor(ids.JOB, request.args.get("after"), "after")
    jobs, has_more = queries.list_jobs(current_user(), after, limit_arg(request.args), metadata)
    return jsonify(list_body([objects.job_object(job) for job in jobs], has_more))


@bp.get("/fine_tuning/jobs/<fine_tuning_job_id>")
@polling
def get_job(fine_tuning_job_id: str):
    """One job."""
    return jsonify(objects.job_object(_owned(fine_tuning_job_id)))


@bp.post("/fine_tuning/jobs/<fine_tuning_job_id>/cancel")
def cancel_job(fine_tuning_job_id: str):
    """Ask the job to stop; it reads cancelled once its backend confirms."""
    job = submission.cancel_job(get_job_context(), _owned(fine_tuning_job_id))
    return jsonify(objects.job_object(Job.get_by_id(job.id)))


@bp.post("/fine_tuning/jobs/<fine_tuning_job_id>/pause")
def pause_job(fine_tuning_job_id: str):
    """Pause a running job (where its backend can): it checkpoints and stops until resumed."""
    return jsonify(objects.job_object(pausing.request_pause(get_job_context(), _owned(fine_tuning_job_id))))


@bp.post("/fine_tuning/jobs/<fine_tuning_job_id>/resume")
def resume_job(fine_tuning_job_id: str):
    """Resume a paused job from its checkpoint."""
    return jsonify(objects.job_object(pausing.resume(get_job_context(), _owned(fine_tuning_job_id))))


@bp.get("/fine_tuning/jobs/<fine_tuning_job_id>/events")
@polling
def list_job_events(fine_tuning_job_id: str):
    """The job's events, newest first, paged by `after`."""
    job = _owned(fine_tuning_job_id)
    after = ids.cursor(ids.EVENT, request.args.get("after"), "after")
    events, has_more = queries.list_events(job, after, limit_arg(request.args))
    return jsonify(list_body([objects.event_object(event) for event in events], has_more))


@bp.get("/fine_tuning/jobs/<fine_tuning_job_id>/checkpoints")
def list_job_checkpoints(fine_tuning_job_id: str):
    """The checkpoints the job keeps, newest first, paged by `after`."""
    found = queries.checkpoints(_owned(fine_tuning_job_id))
    after = request.args.get("after")
    if after:
        positions = [checkpoint["id"] for checkpoint in found]
        found = found[positions.index(after) + 1:] if after in positions else []
    limit = limit_arg(request.args, default=10)
    return jsonify(list_body(found[:limit], len(found) > limit))
