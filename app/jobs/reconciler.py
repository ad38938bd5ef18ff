"""Crash safety: find jobs (and datasets) whose queued work vanished and enqueue their step again.

The database is the source of truth. Work vanishes when Redis is flushed or restarted, or when a
worker dies mid-step; the job row still says which stage it is in, so that stage runs again (every
step is idempotent). Runs when the worker pool starts, then from RQ's worker maintenance every
RECONCILE_INTERVAL seconds (one pass for all workers), so it needs neither RQ's scheduler nor anything
kept in Redis.
"""
from __future__ import annotations

import logging
import os
from datetime import timedelta

from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.registry import ScheduledJobRegistry
from rq.worker import Worker

from app.datasets import service as datasets
from app.jobs import states
from app.jobs.context import JobContext
from app.jobs.events import add_event
from app.jobs.leases import lease_is_live
from app.jobs.scheduling import schedule
from app.models import Dataset, Job, utcnow
from app.queue import DEFAULT_QUEUE, WORKER_HEARTBEAT_SECONDS
from app.webhooks import outbox

log = logging.getLogger(__name__)

ALIVE = ("queued", "started", "scheduled", "deferred")
RECONCILE_LOCK_KEY = "studio:reconciler-pass"
# A started step whose worker stopped heartbeating this long ago died with its worker (StudioWorkers
# heartbeat every WORKER_HEARTBEAT_SECONDS while they work).
DEAD_AFTER = timedelta(seconds=4 * WORKER_HEARTBEAT_SECONDS)
# RQ's scheduler moves due jobs every second; one this late has no scheduler left to move it.
OVERDUE_AFTER = timedelta(seconds=20)


def rq_job_alive(ctx: JobContext, rq_id: str | None) -> bool:
    """Whether the RQ job still exists and is waiting, or being worked on by a worker that still heartbeats."""
    if not rq_id:
        return False
    try:
        rq_job = RQJob.fetch(rq_id, connection=ctx.redis)
    except NoSuchJobError:
        return False
    status = rq_job.get_status(refresh=False)
    if status == "scheduled":
        return not _overdue(ctx, rq_job)
    if status != "started":
        return status in ALIVE
    worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + (rq_job.worker_name or "?"),
                                connection=ctx.redis)
    if worker is None:
        return False
    # A killed worker stays registered until its key expires, but its heartbeat stops at once.
    heartbeat = worker.last_heartbeat
    return heartbeat is None or heartbeat.replace(tzinfo=None) > utcnow() - DEAD_AFTER


def _overdue(ctx: JobContext, rq_job: RQJob) -> bool:
    """Whether a scheduled job is long past its time: no live scheduler is going to enqueue it.

    A killed worker's scheduler lock outlives it by about a minute; rather than wait, the step runs again.
    """
    try:
        due = ScheduledJobRegistry(rq_job.origin, connection=ctx.redis).get_scheduled_time(rq_job)
    except NoSuchJobError:
        return True
    return due.replace(tzinfo=None) < utcnow() - OVERDUE_AFTER


def job_alive(ctx: JobContext, job: Job) -> bool:
    """Whether something is still carrying the job's current stage."""
    if job.stage == states.RUN and lease_is_live(job):
        return True
    if job.stage == states.RUN and job.lease_until is not None:
        # The run took its lease and let it lapse: its process died, whatever RQ still believes.
        return rq_job_status(ctx, job.rq_job_id) in ("queued", "scheduled", "deferred")
    return rq_job_alive(ctx, job.rq_job_id)


def rq_job_status(ctx: JobContext, rq_id: str | None) -> str | None:
    """The RQ job's status, None when it is gone."""
    try:
        return RQJob.fetch(rq_id, connection=ctx.redis).get_status(refresh=False) if rq_id else None
    except NoSuchJobError:
        return None


def reconcile(ctx: JobContext) -> dict:
    """Re-enqueue every active job and processing dataset that lost its work, and every overdue webhook delivery;
    returns the counts."""
    recovered = {"jobs": 0, "datasets": 0}
    # Active jobs, and finished ones whose remote session may still hold a slot (followed by the release step).
    # A paused job is left alone: nothing is meant to carry it until it is resumed.
    carried = ((Job.status.in_(states.ACTIVE) & Job.paused_at.is_null())
               | (Job.status.in_(states.TERMINAL) & Job.remote_open))
    for job in Job.select().where(carried):
        if job.stage == states.DONE:
            recovered["jobs"] += schedule(ctx, job, states.RELEASE) is not None
        elif not job_alive(ctx, job) and recover(ctx, job):
            recovered["jobs"] += 1
    for dataset in Dataset.select().where(Dataset.status == "processing"):
        rq_id = datasets.validation_rq_id(dataset.id)
        if not rq_job_alive(ctx, rq_id) and dataset.updated_at < utcnow() - timedelta(seconds=30):
            datasets.enqueue_validation(ctx.queue(DEFAULT_QUEUE), dataset.id)
            recovered["datasets"] += 1
    recovered["webhook_deliveries"] = outbox.enqueue_overdue(ctx.redis)
    if any(recovered.values()):
        log.warning("reconciler recovered %s", recovered)
    return recovered


def recover(ctx: JobContext, job: Job) -> bool:
    """Enqueue the job's lost step again, counted as another attempt of its stage; False when the job moved on
    since it was read (its step was not lost after all)."""
    lost = f"the worker carrying the {job.stage} step stopped before it finished (killed, out of memory or lost)"
    Job.update(last_error=lost).where((Job.id == job.id) & Job.last_error.is_null()).execute()
    if schedule(ctx, job, job.stage, retry=True) is None:
        return False
    add_event(job, "log", f"recovered: its {job.stage} step was lost and is enqueued again")
    return True


def reconcile_if_due(ctx: JobContext) -> dict | None:
    """One pass per RECONCILE_INTERVAL across all workers: the first to ask takes it, the others skip."""
    interval = ctx.settings.reconcile_interval
    if not ctx.redis.set(RECONCILE_LOCK_KEY, os.getpid(), nx=True, ex=max(1, interval - 1)):
        return None
    return reconcile(ctx)
