"""Creating and cancelling jobs: the service's checks, then the first (or the cancel) step on the queue."""
from __future__ import annotations

import logging

from redis.exceptions import RedisError

from app.auth import quotas
from app.db import database
from app.jobs import service, states
from app.jobs.context import JobContext
from app.jobs.scheduling import schedule
from app.models import Job, User

log = logging.getLogger(__name__)


def submit_job(ctx: JobContext, owner: User, request: service.JobRequest) -> Job:
    """Create the job within the owner's quota and enqueue its first step; without Redis the reconciler does."""
    # One transaction with the owner's row locked: parallel submissions see each other's jobs.
    with database.atomic():
        quotas.claim_active_job(owner, ctx.settings)
        job = service.create_job(owner, request, ctx.enabled_backends())
    try:
        schedule(ctx, job, states.PREPARE)
    except RedisError as error:
        log.warning("job %s created but not enqueued (%s); the reconciler will enqueue it", job.id, error)
    return job


def cancel_job(ctx: JobContext, job: Job) -> Job:
    """Request the cancel, and have a step carry it out unless the run stops itself or nothing had started.

    The cancel step takes the job from the stage it is in now; if a step moves it on first, that step sees the
    request and hands over to the cancel step itself (scheduling.schedule)."""
    service.request_cancel(job)
    if job.status in states.ACTIVE and not ctx.backend(job.backend).stops_itself(job):
        schedule(ctx, job, states.CANCEL)
    return job
