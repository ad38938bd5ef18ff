"""Quotas per user: active jobs, stored bytes and uploads per day, each an admin's override or the default.

No Flask here: job submission, the upload intake, the admin API and the CLI all call these.
"""
from __future__ import annotations

import time
import uuid

import peewee

from app.db import database
from app.errors import NotFound, StudioError, ValidationFailed
from app.jobs import states
from app.models import Artifact, Dataset, Job, User

LIMITS = ("max_active_jobs", "max_stored_bytes", "max_uploads_per_day")
# What each column holds (PostgreSQL integer, bigint).
MAXIMA = {"max_active_jobs": 2 ** 31 - 1, "max_stored_bytes": 2 ** 63 - 1, "max_uploads_per_day": 2 ** 31 - 1}
DAY_SECONDS = 24 * 3600
UPLOADS_KEY = "quota-uploads:{user_id}"

# A sliding 24-hour window of one user's uploads, checked and claimed in one step so that parallel
# uploads cannot all pass a check made before any of them was counted. Returns the count before this
# upload, or -(seconds until the oldest leaves the window) when the limit is reached.
_CLAIM_UPLOAD = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
local count = redis.call('ZCARD', KEYS[1])
if count >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
  return -math.max(1, math.ceil((oldest or ARGV[1]) + ARGV[2] - ARGV[1]))
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return count
"""


class QuotaExceeded(StudioError):
    """A request would take a user beyond one of their limits; details name it."""

    code = "quota_exceeded"

    def __init__(self, limit: str, maximum: int, current: int, status: int, message: str, **extra):
        """Name the limit, its value and the usage it met, answered with status (429 or 409)."""
        super().__init__(message, details={"limit": limit, "max": maximum, "current": current, **extra})
        self.status = status


def defaults(settings) -> dict[str, int]:
    """The installation's limits (QUOTA_* settings)."""
    return {name: getattr(settings, f"quota_{name}") for name in LIMITS}


def effective_limits(user: User, settings) -> dict[str, int]:
    """The limits that apply to user: their own where an admin set one, else the default."""
    return {name: value if (value := getattr(user, name)) is not None else default
            for name, default in defaults(settings).items()}


def limits_view(user: User, settings) -> dict[str, dict]:
    """Each limit with its value, the default and whether the user's own overrides it."""
    return {name: {"value": value, "default": defaults(settings)[name], "overridden": getattr(user, name) is not None}
            for name, value in effective_limits(user, settings).items()}


def claim_active_job(owner: User, settings) -> None:
    """Inside a transaction: lock the owner's row, then refuse (429) if they have their limit of active jobs.

    The lock holds until the caller's transaction ends, so the job it creates is counted by the next
    submission of this owner, however many run at once.
    """
    _lock(owner)
    maximum = effective_limits(owner, settings)["max_active_jobs"]
    current = Job.select().where((Job.owner == owner.id) & Job.status.in_(states.ACTIVE)).count()
    if current >= maximum:
        raise QuotaExceeded("max_active_jobs", maximum, current, 429,
                            f"You have {current} active jobs, your limit; wait for one to end or cancel one.")


def _lock(owner: User) -> None:
    """Lock the owner's row until the transaction ends (SQLite: the database, by a write)."""
    if database.obj.for_update:
        User.select(User.id).where(User.id == owner.id).for_update().execute()
    else:
        User.update(id=User.id).where(User.id == owner.id).execute()


def check_upload(owner: User, settings, redis, incoming_bytes: int | None) -> None:
    """Refuse an upload beyond the owner's stored bytes (409) or uploads per day (429); count it otherwise.

    incoming_bytes is the request's declared length, which bounds the file; without one, the largest
    upload allowed is assumed.
    """
    limits = effective_limits(owner, settings)
    incoming = incoming_bytes if incoming_bytes is not None else settings.dataset_max_bytes
    stored = stored_bytes([owner.id]).get(owner.id, 0)
    if stored + incoming > limits["max_stored_bytes"]:
        raise QuotaExceeded("max_stored_bytes", limits["max_stored_bytes"], stored, 409,
                            "This upload would exceed your storage limit; delete datasets or jobs first.",
                            incoming_bytes=incoming)
    maximum = limits["max_uploads_per_day"]
    outcome = int(redis.eval(_CLAIM_UPLOAD, 1, UPLOADS_KEY.format(user_id=owner.id), time.time(), DAY_SECONDS,
                             maximum, uuid.uuid4().hex))
    if outcome < 0:
        raise QuotaExceeded("max_uploads_per_day", maximum, maximum, 429,
                            f"You reached your limit of {maximum} uploads in 24 hours.", retry_after=-outcome)


def stored_bytes(user_ids: list[int]) -> dict[int, int]:
    """Bytes of datasets and job artifacts each user stores, in two queries whatever the count."""
    totals = dict.fromkeys(user_ids, 0)
    datasets = (Dataset.select(Dataset.owner, peewee.fn.SUM(Dataset.size_bytes))
                .where(Dataset.owner.in_(user_ids)).group_by(Dataset.owner).tuples())
    artifacts = (Artifact.select(Job.owner, peewee.fn.SUM(Artifact.size_bytes)).join(Job)
                 .where(Job.owner.in_(user_ids)).group_by(Job.owner).tuples())
    for owner_id, total in [*datasets, *artifacts]:
        totals[owner_id] += int(total or 0)
    return totals


def usage(user_ids: list[int], redis) -> dict[int, dict]:
    """What each user uses of their limits, in a fixed number of queries and one Redis round trip."""
    active = dict(Job.select(Job.owner, peewee.fn.COUNT(Job.id))
                  .where(Job.owner.in_(user_ids) & Job.status.in_(states.ACTIVE)).group_by(Job.owner).tuples())
    stored = stored_bytes(user_ids)
    pipeline = redis.pipeline(transaction=False)
    for user_id in user_ids:
        pipeline.zcount(UPLOADS_KEY.format(user_id=user_id), time.time() - DAY_SECONDS, "+inf")
    uploads = pipeline.execute()
    return {user_id: {"active_jobs": active.get(user_id, 0), "stored_bytes": stored[user_id],
                      "uploads_today": count} for user_id, count in zip(user_ids, uploads, strict=True)}


def set_limits(user_id: int, changes) -> User:
    """Set limits from {name: a whole number ≥ 0, or None for the default}; ValidationFailed names each bad one."""
    if not isinstance(changes, dict) or not changes:
        raise ValidationFailed("Send an object of limits.", details={"field": "body"})
    problems = {name: problem for name, value in changes.items() if (problem := _limit_problem(name, value))}
    if problems:
        raise ValidationFailed("Invalid limits.", details=problems)
    user = User.get_or_none(User.id == user_id)
    if user is None:
        raise NotFound("user not found")
    values = {name: None if value is None else int(value) for name, value in changes.items()}
    User.update(**values).where(User.id == user.id).execute()
    return User.get_by_id(user.id)


def _limit_problem(name: str, value) -> str | None:
    """Why value cannot be the limit called name, or None when it can."""
    if name not in LIMITS:
        return f"not a limit; use {', '.join(LIMITS)}"
    if value is None:
        return None
    # JSON has one number type: 3.0 is as whole as 3. Booleans are ints to Python, never to a client.
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole or not 0 <= value <= MAXIMA[name]:
        return f"a whole number from 0 to {MAXIMA[name]}, or null for the default"
    return None
