"""Creating and cancelling jobs from a request (page or API): the service plus the queue."""
from __future__ import annotations

import logging

from flask import current_app
from redis.exceptions import RedisError

from app.errors import ValidationFailed
from app.jobs import orchestrator, service, states
from app.jobs.context import JobContext
from app.models import Job, User

log = logging.getLogger(__name__)

FIELDS = ("name", "dataset_id", "validation_dataset_id", "base_model", "method", "backend", "preset",
          "hyperparameters", "ignore_memory_warning")


def request_from(payload: dict) -> service.JobRequest:
    """A JobRequest from a JSON object; unknown or mistyped fields are named."""
    unknown = sorted(set(payload) - set(FIELDS))
    if unknown:
        raise ValidationFailed("Unknown fields.", details={name: "not a job field" for name in unknown})
    problems = {name: "must be a string" for name in ("name", "base_model", "method", "backend", "preset")
                if payload.get(name) is not None and not isinstance(payload[name], str)}
    if not isinstance(payload.get("ignore_memory_warning", False), bool):
        problems["ignore_memory_warning"] = "must be true or false"
    if problems:
        raise ValidationFailed("The job has invalid fields.", details=problems)
    values = {name: payload[name] for name in FIELDS if payload.get(name) is not None}
    values.setdefault("name", "")
    values.setdefault("base_model", "")
    return service.JobRequest(**{"dataset_id": None, **values})


def submit_job(owner: User, request: service.JobRequest) -> Job:
    """Create the job and enqueue its first step; without Redis the reconciler enqueues it later."""
    ctx = JobContext.from_app(current_app)
    job = service.create_job(owner, request, ctx.settings.backend_names, lambda name: backend_problems(ctx, name))
    try:
        orchestrator.schedule(ctx, job, "prepare")
    except RedisError as error:
        log.warning("job %s created but not enqueued (%s); the reconciler will enqueue it", job.id, error)
    return job


def backend_problems(ctx: JobContext, name: str) -> list[str]:
    """Why a backend cannot take jobs now."""
    return [] if name == "local" else ctx.remote(name).configuration_problems()


def cancel_job(job: Job) -> Job:
    """Request the cancel, and have a step carry it out unless nothing had started."""
    service.request_cancel(job)
    if job.status in states.ACTIVE and not (job.backend == "local" and orchestrator.lease_is_live(job)):
        orchestrator.schedule(JobContext.from_app(current_app), job, "cancel")
    return job
