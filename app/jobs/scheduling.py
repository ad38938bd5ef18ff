"""Moving a job to its next stage: recorded on the row first (compare-and-set), then enqueued on RQ.

A stage change succeeds only from the stage and RQ job the caller saw (`UPDATE … WHERE stage = … AND
rq_job_id = …`), so a step, the reconciler and a cancel that race never send a job back a stage: the loser
does nothing. A cancel requested meanwhile wins over any other next stage.
"""
from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from app.jobs import states
from app.jobs.context import JobContext
from app.models import Job, utcnow
from app.queue import DEFAULT_QUEUE, TRAINING_LOCAL_QUEUE

log = logging.getLogger(__name__)

TASK = "workers.tasks.run_job_step"
STEP_TIMEOUT = 15 * 60
# Stages that run on a terminal job: a cancel in progress, and following a remote session to its end.
AFTER_CANCEL = (states.CANCEL, states.RELEASE)


def schedule(ctx: JobContext, job: Job, stage: str, delay: float | None = None, *, retry: bool = False) -> str | None:
    """Move job from the stage it is in (as job says) to stage and enqueue it; the RQ job id, or None when
    another process moved the job first. A normal move (the step did its work, a poll read) starts the stage's
    attempt count again; retry (after a failure, a recovery) keeps it, so failures in a row are bounded."""
    if stage not in AFTER_CANCEL and cancel_requested(job.id):
        stage, delay = states.CANCEL, None
    rq_id = f"studio-job-{job.id}-{stage}-{uuid.uuid4().hex[:8]}"
    changes = {Job.stage: stage, Job.rq_job_id: rq_id, Job.updated_at: utcnow()}
    if not retry:
        changes[Job.stage_attempts] = 0
    if not Job.update(changes).where(still_at(job)).execute():
        log.info("job %s left stage %s meanwhile; not scheduling %s", job.id, job.stage, stage)
        return None
    if not retry:
        job.stage_attempts = 0
    job.stage, job.rq_job_id = stage, rq_id
    _enqueue(ctx, job.id, stage, rq_id, delay)
    return rq_id


def still_at(job: Job):
    """The condition that the row is still at the stage and RQ job that job says."""
    same_rq_job = Job.rq_job_id.is_null() if job.rq_job_id is None else Job.rq_job_id == job.rq_job_id
    return (Job.id == job.id) & (Job.stage == job.stage) & same_rq_job


def cancel_requested(job_id: int) -> bool:
    """Whether someone asked the job to stop (read fresh from the row)."""
    return bool(Job.select(Job.cancel_requested_at).where(Job.id == job_id).scalar())


def _enqueue(ctx: JobContext, job_id: int, stage: str, rq_id: str, delay: float | None) -> None:
    """Put the step on its queue: training runs on their own, so short steps never wait behind them."""
    trains_here = stage == states.RUN
    queue = ctx.queue(TRAINING_LOCAL_QUEUE if trains_here else DEFAULT_QUEUE)
    timeout = ctx.settings.local_training_timeout if trains_here else STEP_TIMEOUT
    options = dict(job_id=rq_id, job_timeout=timeout, result_ttl=3600, failure_ttl=7 * 86400)
    if delay:
        queue.enqueue_in(timedelta(seconds=delay), TASK, job_id, stage, **options)
    else:
        queue.enqueue(TASK, job_id, stage, **options)
