"""The life of a job as short RQ steps (app/jobs/steps.py), each run at most a bounded number of times.

Each step is idempotent and recorded on the job row before it is enqueued (stage + rq_job_id, changed by
compare-and-set in scheduling.py), so a killed worker or a flushed Redis loses nothing: the reconciler
re-enqueues whatever stage a job is in. A step carried by an RQ job the row no longer names is stale and
does nothing. Every start of a stage is counted on the row, whoever started it (the step's own retry, RQ,
the reconciler); past MAX_ATTEMPTS the job fails with the stage and the last error, so every job ends.
"""
from __future__ import annotations

import logging

import peewee
from redis.exceptions import RedisError
from rq.timeouts import JobTimeoutException

from app.jobs import states
from app.jobs.backends import BackendError
from app.jobs.context import JobContext
from app.jobs.events import add_event
from app.jobs.scheduling import AFTER_CANCEL, schedule, still_at
from app.jobs.steps import STEPS, Superseded, cancel, fail
from app.models import Job
from app.storage import StorageError

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
# Failures worth another attempt: the service may be back by then. Anything else is a bug or a refusal.
TRANSIENT_ERRORS = (StorageError, OSError, peewee.OperationalError, peewee.InterfaceError, RedisError)


def run_step(ctx: JobContext, job_id: int, stage: str, rq_id: str | None) -> str:
    """Run one step of a job if it is still the job's current one; returns what happened."""
    job = Job.get_or_none(Job.id == job_id)
    if job is None or (job.status in states.TERMINAL and stage != states.RELEASE):
        return "finished already"
    if job.stage != stage or (rq_id and job.rq_job_id != rq_id):
        return "stale"
    if job.cancel_requested_at and stage not in AFTER_CANCEL:
        return cancel(ctx, job)
    if not _count_attempt(job):
        return "stale"
    if job.stage_attempts > MAX_ATTEMPTS:
        return give_up(ctx, job)
    return _attempt(ctx, job, stage)


def _attempt(ctx: JobContext, job: Job, stage: str) -> str:
    """One attempt at the step; any failure is recorded and retried or ends the job, never left hanging."""
    try:
        return STEPS[stage](ctx, job)
    except Superseded:
        return "stale"
    except JobTimeoutException:
        limit = ctx.settings.local_training_timeout if stage == states.RUN else None
        fail(job, f"The {stage} step took longer than its limit"
                  + (f" (LOCAL_TRAINING_TIMEOUT, {limit} s)." if limit else ".") + " It was stopped.")
        return "timed out"
    except Exception as error:  # every failure must end in a retry or a failed job, never a hanging one
        return handle_failure(ctx, job, stage, error)


def _count_attempt(job: Job) -> bool:
    """Count one more start of the job's stage, unless another step took the job over meanwhile."""
    if not Job.update(stage_attempts=Job.stage_attempts + 1).where(still_at(job)).execute():
        return False
    job.stage_attempts += 1
    return True


def handle_failure(ctx: JobContext, job: Job, stage: str, error: Exception) -> str:
    """Retry a transient failure with exponential backoff; fail the job on a permanent one (or a bug)."""
    transient = error.transient if isinstance(error, BackendError) else isinstance(error, TRANSIENT_ERRORS)
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    if not transient and not isinstance(error, BackendError):
        log.exception("job %s: the %s step failed", job.id, stage)
        message = f"The {stage} step failed: {type(error).__name__}: {message}"
    Job.update(last_error=message[:2000]).where(Job.id == job.id).execute()
    if transient and job.stage_attempts < MAX_ATTEMPTS:
        Job.update(attempts=Job.attempts + 1).where(Job.id == job.id).execute()
        delay = min(5 * 2 ** job.stage_attempts, 600)
        add_event(job, "log", f"{stage} failed ({message}); retrying in {delay}s", {"attempt": job.stage_attempts})
        schedule(ctx, job, stage, delay=delay, retry=True)
        return "retrying"
    fail(job, message if not transient else _exhausted(stage, job.stage_attempts, message))
    return "failed"


def give_up(ctx: JobContext, job: Job) -> str:
    """The stage was started too often without finishing (failures, killed workers): the job ends here."""
    last = job.last_error or "its worker stopped before the step finished (killed, out of memory or timed out)"
    message = _exhausted(job.stage, job.stage_attempts - 1, last)
    if job.stage == states.RELEASE:  # the job ended already: only its slot is left to free
        Job.update(remote_open=False, stage=states.DONE).where(still_at(job)).execute()
        add_event(job, "log", f"stopped following the remote session: {message}")
        return "released"
    fail(job, message)
    return "failed"


def _exhausted(stage: str, attempts: int, last_error: str) -> str:
    """The message of a job whose stage failed too often."""
    return f"The {stage} step failed {attempts} times in a row; the last error: {last_error}"
