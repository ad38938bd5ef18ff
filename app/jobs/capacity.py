"""What each training backend can take now: enabled, configured, jobs running, and its GPU quota."""
from __future__ import annotations

import json
import logging

import peewee
from redis.exceptions import RedisError

from app.jobs import backends, states
from app.jobs.backends import BackendError
from app.jobs.context import JobContext
from app.models import Job, User

log = logging.getLogger(__name__)

QUOTA_KEY = "studio:quota:{backend}:{owner}"
QUOTA_SECONDS = 300
# An unreachable backend is asked again after a minute, not on every dashboard view.
QUOTA_FAILURE_SECONDS = 60


def backend_summaries(ctx: JobContext, owner: User) -> list[dict]:
    """Each backend the Studio knows (the enabled ones first), whether it takes jobs and how many of owner's run.

    Only the owner's own jobs are counted: other users' activity is theirs to know.
    """
    running = dict(Job.select(Job.backend, peewee.fn.COUNT(Job.id))
                   .where((Job.status == states.RUNNING) & (Job.owner == owner.id))
                   .group_by(Job.backend).tuples())
    enabled = ctx.settings.backend_names
    return [_summary(ctx, name, name in enabled, running.get(name, 0), owner)
            for name in [*enabled, *(name for name in backends.names() if name not in enabled)]]


def _summary(ctx: JobContext, name: str, enabled: bool, running: int, owner: User) -> dict:
    """One backend's summary, as owner may use it (their own account's quota)."""
    backend = ctx.backend(name)
    problems = backend.configuration_problems(owner.id) if enabled else []
    summary = {"name": name, "label": backend.label, "enabled": enabled, "configured": enabled and not problems,
               "problems": problems, "running": running, "max_concurrent": backend.max_concurrent(),
               "gpu_gb": backend.gpu_gb}
    if backend.reports_quota:
        summary["quota"] = quota(ctx, name, owner.id) if summary["configured"] else None
    return summary


def quota(ctx: JobContext, name: str, owner_id: int) -> dict | None:
    """The GPU quota this week of the account owner's jobs run on, cached in Redis; {"unknown": true} when the
    backend cannot say."""
    key = QUOTA_KEY.format(backend=name, owner=owner_id)
    try:
        cached = ctx.redis.get(key)
    except RedisError:
        cached = None
    if cached:
        return json.loads(cached)
    try:
        found, seconds = ctx.backend(name).quota(quick=True, owner_id=owner_id) or {"unknown": True}, QUOTA_SECONDS
    except BackendError as error:
        log.warning("%s quota unavailable: %s", name, error.message)
        found, seconds = {"unknown": True, "reason": error.message}, QUOTA_FAILURE_SECONDS
    try:
        ctx.redis.set(key, json.dumps(found), ex=seconds)
    except RedisError:
        log.warning("could not cache the %s quota", name)
    return found
