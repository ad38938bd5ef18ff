"""API routes: thin, they parse the request, ask the models or services, and serialise."""
from __future__ import annotations

import json
from pathlib import Path

from flask import jsonify, request

from app.api import bp, schemas
from app.api.auth import current_api_user
from app.errors import ValidationFailed
from app.models import Artifact, Dataset, Job, JobEvent
from app.pagination import int_arg, page_args, paginate

OPENAPI_PATH = Path(__file__).with_name("openapi.json")
JOB_STATUSES = ("queued", "preparing", "running", "succeeded", "failed", "cancelled")
MAX_EVENTS = 500


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI document of this API."""
    from flask import current_app

    document = json.loads(OPENAPI_PATH.read_text())
    document["info"]["version"] = current_app.config["VERSION"]
    return jsonify(document)


@bp.get("/datasets")
def list_datasets():
    """The user's datasets, newest first."""
    page, per_page = page_args(request.args)
    query = Dataset.select().where(Dataset.owner == current_api_user().id)
    result = paginate(query.order_by(Dataset.created_at.desc(), Dataset.id.desc()), page, per_page)
    return jsonify(data=[schemas.dataset_dict(d) for d in result.items], meta=result.meta())


@bp.get("/datasets/<int:dataset_id>")
def get_dataset(dataset_id: int):
    """One of the user's datasets."""
    return jsonify(schemas.dataset_dict(Dataset.get_owned(dataset_id, current_api_user())))


@bp.get("/jobs")
def list_jobs():
    """The user's jobs, newest first, optionally of one status."""
    page, per_page = page_args(request.args)
    query = Job.select().where(Job.owner == current_api_user().id)
    status = request.args.get("status")
    if status:
        if status not in JOB_STATUSES:
            raise ValidationFailed(f"status must be one of {', '.join(JOB_STATUSES)}.", details={"field": "status"})
        query = query.where(Job.status == status)
    result = paginate(query.order_by(Job.created_at.desc(), Job.id.desc()), page, per_page)
    return jsonify(data=[schemas.job_dict(j) for j in result.items], meta=result.meta())


@bp.get("/jobs/<int:job_id>")
def get_job(job_id: int):
    """One of the user's jobs with its progress."""
    return jsonify(schemas.job_dict(Job.get_owned(job_id, current_api_user())))


@bp.get("/jobs/<int:job_id>/events")
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
    return jsonify(data=[schemas.artifact_dict(a) for a in artifacts])

