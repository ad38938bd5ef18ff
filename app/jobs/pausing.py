"""Pausing a run and resuming it, on backends that can (`pauses`): the run checkpoints and stops; resuming runs
it again from that checkpoint. No Flask here."""
from __future__ import annotations

from app.errors import Conflict, StudioError
from app.jobs import states
from app.jobs.context import JobContext
from app.jobs.events import add_event
from app.jobs.leases import lease_is_live
from app.jobs.scheduling import schedule
from app.models import Job, utcnow


class NotPausable(StudioError):
    """The job's backend cannot pause a run on request."""

    code = "unsupported"


def request_pause(ctx: JobContext, job: Job) -> Job:
    """Ask a running job to pause; its run checkpoints and stops within seconds."""
    if not getattr(ctx.backend(job.backend), "pauses", False):
        raise NotPausable(f"The {job.backend} backend cannot pause a job; cancel it, or let it finish.",
                          details={"field": "fine_tuning_job_id"})
    if job.status != states.RUNNING or job.cancel_requested_at is not None:
        raise Conflict(f"Only a running job can be paused; this one is {job.status}.", details={"status": job.status})
    if job.paused_at is None:
        job.paused_at = utcnow()
        Job.update(paused_at=job.paused_at).where(Job.id == job.id).execute()
        add_event(job, "log", "pause requested")
    return job


def resume(ctx: JobContext, job: Job) -> Job:
    """Carry a paused job on: the run continues if it had not stopped yet, else a new run resumes it."""
    if job.paused_at is None or job.status != states.RUNNING:
        raise Conflict("Only a paused job can be resumed.", details={"status": job.status})
    Job.update(paused_at=None).where(Job.id == job.id).execute()
    job.paused_at = None
    add_event(job, "log", "resumed")
    if job.stage == states.RUN and not lease_is_live(job):
        schedule(ctx, job, states.RUN)
    return job
