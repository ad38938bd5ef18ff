"""A job's lease: the one process training it holds the lease and renews it, so no second run can start."""
from __future__ import annotations

from datetime import timedelta

from app.models import Job, utcnow


def lease_is_live(job: Job) -> bool:
    """Whether a process holds the job's lease now."""
    return job.lease_until is not None and job.lease_until > utcnow()


def acquire(job_id: int, owner: str, duration: timedelta) -> bool:
    """Take the job's lease for owner unless another live process holds it."""
    now = utcnow()
    taken = Job.update(lease_owner=owner, lease_until=now + duration).where(
        (Job.id == job_id) & ((Job.lease_until.is_null()) | (Job.lease_until < now)
                              | (Job.lease_owner == owner))).execute()
    return bool(taken)


def renew(job_id: int, owner: str, duration: timedelta) -> bool:
    """Extend owner's lease; False when owner no longer holds it."""
    return bool(Job.update(lease_until=utcnow() + duration).where(
        (Job.id == job_id) & (Job.lease_owner == owner)).execute())


def release(job_id: int, owner: str) -> None:
    """Give owner's lease up (a no-op when owner does not hold it)."""
    Job.update(lease_owner=None, lease_until=None).where((Job.id == job_id) & (Job.lease_owner == owner)).execute()
