"""The steps of a job, each idempotent: prepare → submit → (run | poll…) → collect → finalize, cancel, release.

Each step asks the job's backend what to do (app/jobs/backends) and hands over to the next stage through
scheduling.schedule, which only moves the job from the stage this step runs. `faults.hit` marks the points
where the fault drill kills the worker (tests/jobs/test_fault_drill.py).
"""
from __future__ import annotations

import shutil
from datetime import datetime

from redis.exceptions import LockError

from app import faults
from app.db import database
from app.jobs import admission, gpu_budget, inputs, judging, log_overflow, states
from app.jobs.artifacts import store_artifacts
from app.jobs.backends import RunOutcome
from app.jobs.context import JobContext
from app.jobs.events import add_event, move
from app.jobs.progress import apply_output, last_error_message
from app.jobs.scheduling import cancel_requested, schedule, still_at
from app.models import Job, utcnow

POLL_INTERVALS = (5, 10, 20, 40, 60)
RELEASE_INTERVAL = 60
SLOT_WAIT_SECONDS = 60
# A session status the Studio does not know is waited out this long, then the job fails with it.
UNKNOWN_STATUS_SECONDS = 30 * 60


class Superseded(Exception):
    """Another attempt of the step took over the job while this one worked: its results are dropped."""


def fail(job: Job, message: str) -> None:
    """Mark the job failed with a message for the user."""
    move(job, states.FAILED, message, error=message)


def prepare(ctx: JobContext, job: Job) -> str:
    """Admit the job if its account has a free slot (else it waits queued, saying why); then gather the training
    inputs, which a backend that trains elsewhere uploads."""
    backend = ctx.backend(job.backend)
    if job.status == states.QUEUED and backend.max_concurrent() is not None:
        with admission.account_lock(ctx, job):
            reason = admission.slot_wait_reason(ctx, job, admission.admitted(job)) \
                or gpu_budget.quota_wait_reason(ctx, job)
            if reason is None:
                move(job, states.PREPARING, "preparing")
        if reason is not None:
            admission.record_wait(job, reason, update_ref)
            schedule(ctx, job, states.PREPARE, delay=SLOT_WAIT_SECONDS)
            return "waiting for a slot"
    move(job, states.PREPARING, "preparing")
    if not backend.trains_in_worker:
        changes = backend.prepare(inputs.gather(ctx, job), job.backend_ref or {})
        faults.hit("prepare.uploaded")
        update_ref(job, {**changes, **admission.stop_waiting()})
        if changes.get("account") and changes["account"] != job.backend_account:
            Job.update(backend_account=changes["account"]).where(Job.id == job.id).execute()
            job.backend_account = changes["account"]
    schedule(ctx, job, states.SUBMIT)
    return "prepared"


def submit(ctx: JobContext, job: Job) -> str:
    """Start the training: in a worker of the training queue, or elsewhere once the backend has a free slot."""
    if ctx.backend(job.backend).trains_in_worker:
        schedule(ctx, job, states.RUN)
        return "queued for a training worker"
    try:
        with admission.account_lock(ctx, job):
            return _submit_remote(ctx, job)
    except LockError:
        schedule(ctx, job, states.SUBMIT, delay=SLOT_WAIT_SECONDS)
        return "another submission holds the lock"


def _submit_remote(ctx: JobContext, job: Job) -> str:
    """Push the run if a slot is free, else try again later; a cancel that lands meanwhile still wins."""
    backend = ctx.backend(job.backend)
    if cancel_requested(job.id):
        return cancel_now(ctx, job)
    reason = admission.slot_wait_reason(ctx, job, admission.sessions_held(job))
    if reason is not None:  # look again in a minute, or sooner when a slot frees
        admission.record_wait(job, reason, update_ref)
        schedule(ctx, job, states.SUBMIT, delay=SLOT_WAIT_SECONDS)
        return "waiting for a slot"
    prepared = inputs.gather(ctx, job)
    if cancel_requested(job.id):
        return cancel_now(ctx, job)
    changes = backend.submit(prepared, job.backend_ref or {})
    faults.hit("submit.pushed")
    update_ref(job, {**changes, **admission.stop_waiting()}, remote_open=True)
    if cancel_requested(job.id):  # landed during the push: stop what was just started
        return cancel_now(ctx, job)
    session = (job.backend_ref or {}).get("session", 1)
    if session > 1:
        add_event(job, "log", f"session {session} started on {job.backend}", {"session": session})
    move(job, states.RUNNING, f"submitted to {job.backend}")
    schedule(ctx, job, states.POLL, delay=POLL_INTERVALS[0])
    return "submitted"


def poll(ctx: JobContext, job: Job) -> str:
    """Read the remote run's state and new output; record both at once, then poll again later or move on."""
    result = ctx.backend(job.backend).poll(job.backend_ref or {})
    ref = job.backend_ref or {}
    ended = result.state in ("complete", "paused", "error", "cancelled")
    with database.atomic():
        kept = apply_output(job, result.lines, ref.get("log_lines", 0), ctx.settings.job_log_event_cap,
                            log_overflow.keeper(ctx.store, job))
        faults.hit("poll.recorded")
        quiet = 0 if result.lines else ref.get("quiet_polls", 0) + 1
        changes = {**result.ref, "quiet_polls": quiet, "remote_state": result.state,
                   "log_lines": ref.get("log_lines", 0) + kept, **_unknown_since(result, ref)}
        if not update_ref(job, changes, remote_open=not ended, only_if_current=True):
            raise Superseded(f"job {job.id}: a newer poll took over")
    return _after_poll(ctx, job, result)


def _unknown_since(result, ref: dict) -> dict:
    """When the backend started reporting a status the Studio does not know (kept until it knows it again)."""
    if result.state != "unknown":
        return {"unknown_since": None}
    return {"unknown_since": ref.get("unknown_since") or utcnow().isoformat()}


def _after_poll(ctx: JobContext, job: Job, result) -> str:
    """The next stage after a poll: poll again, collect, or the job's end."""
    if result.state in ("queued", "running") or (result.state == "unknown" and not _unknown_too_long(job)):
        quiet = job.backend_ref["quiet_polls"]
        schedule(ctx, job, states.POLL, delay=POLL_INTERVALS[min(quiet, len(POLL_INTERVALS) - 1)])
        return result.state
    if result.state == "complete":
        schedule(ctx, job, states.COLLECT)
        return "complete"
    if result.state == "paused":
        return _next_session(ctx, job)
    if result.state == "cancelled":
        move(job, states.CANCELLED, "the remote session was cancelled")
    elif result.state == "unknown":
        fail(job, f"The backend kept reporting a session status the Studio does not know ({result.message}).")
    else:
        fail(job, last_error_message(job) or result.message or "The remote run failed.")
    wake_waiting(ctx, job)
    return job.status


def _next_session(ctx: JobContext, job: Job) -> str:
    """The session stopped at its time budget with a checkpoint: the job goes on in a new one, its slot freed."""
    ref = job.backend_ref or {}
    update_ref(job, ctx.backend(job.backend).continuation(ref))
    add_event(job, "log", f"session {ref.get('session', 1)} reached its time limit after step "
                          f"{ref.get('paused_at_step')}; the run continues in a new session",
              {"session": ref.get("session", 1), "step": ref.get("paused_at_step")})
    schedule(ctx, job, states.SUBMIT)
    wake_waiting(ctx, job)
    return "paused"


def _unknown_too_long(job: Job) -> bool:
    """Whether the session's status has been unknown for longer than the Studio waits."""
    since = (job.backend_ref or {}).get("unknown_since")
    return bool(since) and (utcnow() - _parse_time(since)).total_seconds() > UNKNOWN_STATUS_SECONDS


def _parse_time(text: str) -> datetime:
    """A naive UTC timestamp written by isoformat()."""
    return datetime.fromisoformat(text)


def run(ctx: JobContext, job: Job) -> str:
    """Train in this worker (a long step on the training queue), then move on by how the run ended."""
    outcome = ctx.backend(job.backend).train(ctx, job)
    faults.hit("run.ended")
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
    """Another process holds the job's run; it carries the job on, this attempt does nothing."""
    return outcome.message


def _paused(ctx: JobContext, job: Job, outcome: RunOutcome) -> str:
    """The run checkpointed and stopped on a pause: nothing carries the job on until it is resumed."""
    add_event(job, "log", outcome.message)
    return "paused"


RUN_OUTCOMES = {"trained": _trained, "failed": _run_failed, "cancelled": _run_cancelled,
                "handed back": _handed_back, "busy": _busy, "paused": _paused}


def collect(ctx: JobContext, job: Job) -> str:
    """Copy the run's outputs into object storage as the job's artifacts."""
    outputs = ctx.backend(job.backend).outputs(ctx, job)
    stored = store_artifacts(ctx.store, job, outputs)
    judging.record_checkpoints(job, outputs)
    faults.hit("collect.stored")
    add_event(job, "log", f"stored {stored} output files")
    schedule(ctx, job, states.FINALIZE)
    return "collected"


def finalize(ctx: JobContext, job: Job) -> str:
    """Free the job's local folder, then mark it succeeded and free its slot (a rerun finds nothing to free)."""
    shutil.rmtree(ctx.runs_dir(job.id), ignore_errors=True)
    faults.hit("finalize.cleaned")
    move(job, states.SUCCEEDED, "succeeded")
    wake_waiting(ctx, job)
    return "succeeded"


def cancel(ctx: JobContext, job: Job) -> str:
    """Stop the job's run where it is; a run that watches for the request stops itself. For a backend with
    slots, wait for a submission in flight, so that the session it pushes is seen and stopped too."""
    backend = ctx.backend(job.backend)
    if backend.stops_itself(job):
        return "the run will stop"
    if backend.max_concurrent() is None:
        return cancel_now(ctx, job)
    with admission.account_lock(ctx, job):
        return cancel_now(ctx, job)


def cancel_now(ctx: JobContext, job: Job) -> str:
    """Cancel on the freshest row: stop the run if the backend can; a remote session it cannot stop is followed
    (release) until it ends, holding its slot."""
    job = Job.get_by_id(job.id)
    outcome = ctx.backend(job.backend).cancel(job.backend_ref or {})
    if outcome.message:
        add_event(job, "log", outcome.message, {"confirmed": outcome.confirmed})
    if outcome.confirmed and job.remote_open:
        Job.update(remote_open=False).where(Job.id == job.id).execute()
        job.remote_open = False
    move(job, states.CANCELLED, "cancelled")
    if job.remote_open:
        schedule(ctx, job, states.RELEASE, delay=RELEASE_INTERVAL)
    else:
        wake_waiting(ctx, job)
    return "cancelled"


def release(ctx: JobContext, job: Job) -> str:
    """Follow a finished job's remote session until the backend says it ended, then free its slot."""
    state = ctx.backend(job.backend).poll(job.backend_ref or {}).state
    if state in ("queued", "running", "unknown"):
        schedule(ctx, job, states.RELEASE, delay=RELEASE_INTERVAL)
        return f"the remote session is still {state}"
    Job.update(remote_open=False, stage=states.DONE).where(still_at(job)).execute()
    add_event(job, "log", f"the remote session ended ({state}); its slot is free")
    wake_waiting(ctx, job)
    return "released"


def wake_waiting(ctx: JobContext, ended: Job) -> None:
    """A slot of the job's account was freed: let the jobs waiting for one try now rather than at their next
    check."""
    if ctx.backend(ended.backend).max_concurrent() is None:
        return
    for job in admission.waiting_jobs(ended):
        schedule(ctx, job, job.stage)


def update_ref(job: Job, changes: dict, *, remote_open: bool | None = None, only_if_current: bool = False) -> bool:
    """Merge changes into the job's backend_ref (and set remote_open) and save them; with only_if_current,
    only while the row still names this step's RQ job. Whether the row was updated."""
    merged = {**(job.backend_ref or {}), **changes}
    fields = {Job.backend_ref: merged, Job.updated_at: utcnow()}
    if remote_open is not None:
        fields[Job.remote_open] = remote_open
    condition = still_at(job) if only_if_current else Job.id == job.id
    if not Job.update(fields).where(condition).execute():
        return False
    job.backend_ref = merged
    if remote_open is not None:
        job.remote_open = remote_open
    return True


STEPS = {states.PREPARE: prepare, states.SUBMIT: submit, states.POLL: poll, states.RUN: run,
         states.COLLECT: collect, states.FINALIZE: finalize, states.CANCEL: cancel, states.RELEASE: release}
