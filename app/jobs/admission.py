"""Whether a job may take one of its account's sessions now, and why it waits when it may not.

A backend with a cap (Kaggle: two GPU sessions per account) counts it per account (`Job.backend_account`):
every user's own account, or the shared one. A job is admitted when it leaves `queued` (the prepare step moves
it, under the account's lock, so parallel admissions see each other); the push itself checks the sessions the
account really holds (`remote_open`) under the same lock, so a race never runs a third session.
"""
from __future__ import annotations

from contextlib import contextmanager

from app.jobs import states
from app.jobs.context import JobContext
from app.jobs.events import add_event
from app.models import Job

ACCOUNT_LOCK_SECONDS = 120


@contextmanager
def account_lock(ctx: JobContext, job: Job):
    """The lock of the job's backend account: counting its slots and taking one (or cancelling a submission) is
    one step, or concurrent submits all see a free slot and a cancel misses the session a submit is pushing."""
    name = f"studio:submit-lock:{job.backend}:{job.backend_account or '-'}"
    with ctx.redis.lock(name, timeout=ACCOUNT_LOCK_SECONDS, blocking_timeout=ACCOUNT_LOCK_SECONDS):
        yield


def same_account(job: Job):
    """Jobs of the same backend and account, other than job."""
    account = (Job.backend_account.is_null() if job.backend_account is None
               else Job.backend_account == job.backend_account)
    return (Job.backend == job.backend) & account & (Job.id != job.id)


def sessions_held(job: Job) -> int:
    """How many other jobs of the account hold a session: their remote session may still run."""
    return Job.select().where(same_account(job) & Job.remote_open).count()


def admitted(job: Job) -> int:
    """How many other jobs of the account were admitted (past queued, not ended) or still hold a session."""
    return Job.select().where(same_account(job) & (Job.status.in_((states.PREPARING, states.RUNNING))
                                                   | Job.remote_open)).count()


def slot_wait_reason(ctx: JobContext, job: Job, taken: int) -> str | None:
    """Why the job must wait for its account's slots, or None when one is free."""
    backend = ctx.backend(job.backend)
    cap = backend.max_concurrent()
    if cap is None or taken < cap:
        return None
    return backend.slot_wait_reason({**(job.backend_ref or {}), "account": job.backend_account}, cap)


def record_wait(job: Job, reason: str, update_ref) -> None:
    """Keep the reason on the job (shown on its page) and say it in its history once per distinct reason."""
    ref = job.backend_ref or {}
    if ref.get("waiting_for_slot") and ref.get("waiting_reason") == reason:
        return
    update_ref(job, {"waiting_for_slot": True, "waiting_reason": reason})
    add_event(job, "log", reason)


def stop_waiting() -> dict:
    """The ref changes of a job that no longer waits."""
    return {"waiting_for_slot": False, "waiting_reason": None}


def waiting_jobs(job: Job):
    """The active jobs of job's account that wait for a slot (queued to be admitted, or to push a session)."""
    candidates = Job.select().where(same_account(job) & (Job.stage.in_((states.PREPARE, states.SUBMIT)))
                                    & Job.status.in_(states.ACTIVE))
    return [waiting for waiting in candidates if (waiting.backend_ref or {}).get("waiting_for_slot")]
