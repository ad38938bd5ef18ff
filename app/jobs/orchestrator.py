"""The life of a job as short RQ steps: prepare → submit → (run | poll…) → collect → finalize.

Each step is idempotent and recorded on the job row before it is enqueued (stage + rq_job_id), so a
killed worker or a flushed Redis loses nothing: the reconciler re-enqueues whatever stage a job is in.
A step carried by an RQ job the row no longer names is stale and does nothing. The steps ask the job's
backend what to do (app/jobs/backends); none of them knows a backend by name.
"""
from __future__ import annotations

import logging
import shutil
import uuid
from datetime import timedelta

from redis.exceptions import LockError

from app.jobs import inputs, states
from app.jobs.artifacts import store_artifacts
from app.jobs.backends import BackendError, RunOutcome
from app.jobs.context import JobContext
from app.jobs.events import add_event, move
from app.jobs.progress import apply_output, last_error_message
from app.models import Job, utcnow
from app.queue import DEFAULT_QUEUE, TRAINING_LOCAL_QUEUE
from app.storage import StorageError

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
STEP_TIMEOUT = 15 * 60
POLL_INTERVALS = (5, 10, 20, 40, 60)
SLOT_WAIT_SECONDS = 60
SUBMIT_LOCK_SECONDS = 120


def schedule(ctx: JobContext, job: Job, stage: str, delay: float | None = None) -> str:
    """Record the job's next stage, then enqueue it (in delay seconds); returns the RQ job id.

    A cancel requested meanwhile wins: the step that finishes hands over to the cancel step instead.
    """
    if stage != states.CANCEL and Job.select(Job.cancel_requested_at).where(Job.id == job.id).scalar():
        stage, delay = states.CANCEL, None
    rq_id = f"studio-job-{job.id}-{stage}-{uuid.uuid4().hex[:8]}"
    Job.update(stage=stage, rq_job_id=rq_id, updated_at=utcnow()).where(Job.id == job.id).execute()
    job.stage, job.rq_job_id = stage, rq_id
    trains_here = stage == states.RUN
    queue = ctx.queue(TRAINING_LOCAL_QUEUE if trains_here else DEFAULT_QUEUE)
    timeout = ctx.settings.local_training_timeout if trains_here else STEP_TIMEOUT
    options = dict(job_id=rq_id, job_timeout=timeout, result_ttl=3600, failure_ttl=7 * 86400)
    if delay:
        queue.enqueue_in(timedelta(seconds=delay), "workers.tasks.run_job_step", job.id, stage, **options)
    else:
        queue.enqueue("workers.tasks.run_job_step", job.id, stage, **options)
    return rq_id


def run_step(ctx: JobContext, job_id: int, stage: str, rq_id: str | None) -> str:
    """Run one step of a job if it is still the job's current one; returns what happened."""
    job = Job.get_or_none(Job.id == job_id)
    if job is None or job.status in states.TERMINAL:
        return "finished already"
    if job.stage != stage or (rq_id and job.rq_job_id != rq_id):
        return "stale"
    if job.cancel_requested_at and stage != states.CANCEL:
        return cancel(ctx, job)
    try:
        return STEPS[stage](ctx, job)
    except (BackendError, StorageError, OSError) as error:
        return handle_failure(ctx, job, stage, error)


def handle_failure(ctx: JobContext, job: Job, stage: str, error: Exception) -> str:
    """Retry a transient failure with exponential backoff; fail the job on a permanent one."""
    transient = getattr(error, "transient", True)
    message = getattr(error, "message", None) or str(error)
    if transient and job.attempts < MAX_ATTEMPTS:
        job.attempts += 1
        Job.update(attempts=job.attempts).where(Job.id == job.id).execute()
        delay = min(5 * 2 ** job.attempts, 600)
        add_event(job, "log", f"{stage} failed ({message}); retrying in {delay}s", {"attempt": job.attempts})
        schedule(ctx, job, stage, delay=delay)
        return "retrying"
    fail(job, message)
    return "failed"


def fail(job: Job, message: str) -> None:
    """Mark the job failed with a message for the user."""
    move(job, states.FAILED, message, error=message)


def prepare(ctx: JobContext, job: Job) -> str:
    """Gather the training inputs; a backend that trains elsewhere uploads them."""
    move(job, states.PREPARING, "preparing")
    backend = ctx.backend(job.backend)
    if not backend.trains_in_worker:
        _update_ref(job, backend.prepare(inputs.gather(ctx, job), job.backend_ref or {}))
    schedule(ctx, job, states.SUBMIT)
    return "prepared"


def submit(ctx: JobContext, job: Job) -> str:
    """Start the training: in a worker of the training queue, or elsewhere once the backend has a free slot."""
    backend = ctx.backend(job.backend)
    if backend.trains_in_worker:
        schedule(ctx, job, states.RUN)
        return "queued for a training worker"
    try:
        # Counting the slots and taking one must be a single step, or concurrent submits all see a free slot.
        with ctx.redis.lock(f"studio:submit-lock:{job.backend}", timeout=SUBMIT_LOCK_SECONDS,
                            blocking_timeout=SUBMIT_LOCK_SECONDS):
            return _submit_remote(ctx, job)
    except LockError:
        schedule(ctx, job, states.SUBMIT, delay=SLOT_WAIT_SECONDS)
        return "another submission holds the lock"


def _submit_remote(ctx: JobContext, job: Job) -> str:
    """Push the run if a slot is free, else try again later."""
    backend = ctx.backend(job.backend)
    cap = backend.max_concurrent()
    if cap is not None and _slots_taken(job) >= cap:
        if not (job.backend_ref or {}).get("waiting_for_slot"):
            _update_ref(job, {"waiting_for_slot": True})
            add_event(job, "log", f"waiting for a free slot: {cap} jobs already run on {backend.label}")
        schedule(ctx, job, states.SUBMIT, delay=SLOT_WAIT_SECONDS)
        return "waiting for a slot"
    prepared = inputs.gather(ctx, job)
    _update_ref(job, {**backend.submit(prepared, job.backend_ref or {}), "waiting_for_slot": False})
    move(job, states.RUNNING, f"submitted to {job.backend}")
    schedule(ctx, job, states.POLL, delay=POLL_INTERVALS[0])
    return "submitted"


def _slots_taken(job: Job) -> int:
    """How many other jobs of this backend hold a slot (submitted and not finished)."""
    return Job.select().where((Job.backend == job.backend) & (Job.status == states.RUNNING)
                              & (Job.id != job.id)).count()


def poll(ctx: JobContext, job: Job) -> str:
    """Read the remote run's state and new output; poll again later, or move on."""
    result = ctx.backend(job.backend).poll(job.backend_ref or {})
    apply_output(job, result.lines)
    quiet = 0 if result.lines else (job.backend_ref or {}).get("quiet_polls", 0) + 1
    _update_ref(job, {**result.ref, "quiet_polls": quiet, "remote_state": result.state})
    if result.state in ("queued", "running"):
        schedule(ctx, job, states.POLL, delay=POLL_INTERVALS[min(quiet, len(POLL_INTERVALS) - 1)])
        return result.state
    if result.state == "complete":
        schedule(ctx, job, states.COLLECT)
        return "complete"
    if result.state == "cancelled":
        move(job, states.CANCELLED, "the remote session was cancelled")
    else:
        fail(job, last_error_message(job) or result.message or "The remote run failed.")
    wake_waiting(ctx, job.backend)
    return job.status


def run(ctx: JobContext, job: Job) -> str:
    """Train in this worker (a long step on the training queue), then move on by how the run ended."""
    outcome = ctx.backend(job.backend).train(ctx, job)
    return RUN_OUTCOMES[outcome.result](ctx, job, outcome)


def _trained(ctx: JobContext, job: Job, outcome: RunOutcome) -> str:
    """The program finished: collect its outputs."""
    schedule(ctx, job, states.COLLECT)
    return "trained"


def _run_failed(ctx: JobContext, job: Job, outcome: RunOutcome) -> str:
    """The program failed: the job fails with its message."""
    fail(job, outcome.message)
    return "failed"


def _run_cancelled(ctx: JobContext, job: Job, outcome: RunOutcome) -> str:
    """The run stopped on the cancel request."""
    move(job, states.CANCELLED, outcome.message)
    return "cancelled"


def _handed_back(ctx: JobContext, job: Job, outcome: RunOutcome) -> str:
    """The worker is stopping: the run checkpointed, and the next worker resumes it."""
    add_event(job, "log", outcome.message)
    schedule(ctx, job, states.RUN)
    return "handed back"


def _busy(ctx: JobContext, job: Job, outcome: RunOutcome) -> str:
    """Another process holds the job's run; nothing to do here."""
    return outcome.message


RUN_OUTCOMES = {"trained": _trained, "failed": _run_failed, "cancelled": _run_cancelled,
                "handed back": _handed_back, "busy": _busy}


def collect(ctx: JobContext, job: Job) -> str:
    """Copy the run's outputs into object storage as the job's artifacts."""
    outputs = ctx.backend(job.backend).outputs(ctx, job)
    stored = store_artifacts(ctx.store, job, outputs)
    add_event(job, "log", f"stored {stored} output files")
    schedule(ctx, job, states.FINALIZE)
    return "collected"


def finalize(ctx: JobContext, job: Job) -> str:
    """Mark the job succeeded, free its local folder and its slot."""
    move(job, states.SUCCEEDED, "succeeded")
    shutil.rmtree(ctx.runs_dir(job.id), ignore_errors=True)
    wake_waiting(ctx, job.backend)
    return "succeeded"


def wake_waiting(ctx: JobContext, backend_name: str) -> None:
    """A slot of the backend was freed: let the jobs waiting for one try now rather than at their next check."""
    if ctx.backend(backend_name).max_concurrent() is None:
        return
    waiting = Job.select().where((Job.backend == backend_name) & (Job.stage == states.SUBMIT)
                                 & Job.status.in_(states.ACTIVE))
    for job in waiting:
        if (job.backend_ref or {}).get("waiting_for_slot"):
            schedule(ctx, job, states.SUBMIT)


def cancel(ctx: JobContext, job: Job) -> str:
    """Stop the job's run where it is; a run that watches for the request stops itself."""
    backend = ctx.backend(job.backend)
    if backend.stops_itself(job):
        return "the run will stop"
    outcome = backend.cancel(job.backend_ref or {})
    if outcome.message:
        add_event(job, "log", outcome.message, {"confirmed": outcome.confirmed})
    move(job, states.CANCELLED, "cancelled")
    wake_waiting(ctx, job.backend)
    return "cancelled"


def _update_ref(job: Job, changes: dict) -> None:
    """Merge changes into the job's backend_ref and save it."""
    job.backend_ref = {**(job.backend_ref or {}), **changes}
    Job.update(backend_ref=job.backend_ref, updated_at=utcnow()).where(Job.id == job.id).execute()


STEPS = {states.PREPARE: prepare, states.SUBMIT: submit, states.POLL: poll, states.RUN: run,
         states.COLLECT: collect, states.FINALIZE: finalize, states.CANCEL: cancel}
