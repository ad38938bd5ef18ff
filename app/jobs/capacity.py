"""What each training backend can take now: enabled, configured, jobs running, and Kaggle's GPU quota."""
from __future__ import annotations

import json
import logging

import peewee
from redis.exceptions import RedisError

from app.jobs import states
from app.jobs.backends import BackendError
from app.jobs.context import JobContext
from app.jobs.kaggle import KaggleBackend, Patience
from app.models import Job

log = logging.getLogger(__name__)

QUOTA_KEY = "studio:kaggle-quota"
QUOTA_SECONDS = 300
# An unreachable Kaggle is asked again after a minute, not on every dashboard view.
QUOTA_FAILURE_SECONDS = 60
# A page must not wait on Kaggle for long: one short attempt.
QUOTA_PATIENCE = Patience(attempts=1, timeout=(3.0, 5.0))


def backend_summaries(ctx: JobContext) -> list[dict]:
    """Each backend the Studio knows, with whether it takes jobs and how busy it is."""
    running = dict(Job.select(Job.backend, peewee.fn.COUNT(Job.id)).where(Job.status == states.RUNNING)
                   .group_by(Job.backend).tuples())
    summaries = []
    for name in ("local", "kaggle"):
        enabled = name in ctx.settings.backend_names
        problems = [] if name == "local" or not enabled else ctx.remote(name).configuration_problems()
        summary = {"name": name, "enabled": enabled, "configured": enabled and not problems, "problems": problems,
                   "running": running.get(name, 0)}
        if name == "kaggle":
            summary["max_concurrent"] = ctx.settings.kaggle_max_concurrent
            summary["quota"] = kaggle_quota(ctx) if summary["configured"] else None
        summaries.append(summary)
    return summaries


def kaggle_quota(ctx: JobContext) -> dict | None:
    """The account's GPU quota this week, cached in Redis; {"unknown": true} when Kaggle cannot say."""
    try:
        cached = ctx.redis.get(QUOTA_KEY)
    except RedisError:
        cached = None
    if cached:
        return json.loads(cached)
    try:
        quota = KaggleBackend(ctx.settings, QUOTA_PATIENCE).quota() or {"unknown": True}
        seconds = QUOTA_SECONDS
    except BackendError as error:
        log.warning("Kaggle quota unavailable: %s", error.message)
        quota, seconds = {"unknown": True, "reason": error.message}, QUOTA_FAILURE_SECONDS
    try:
        ctx.redis.set(QUOTA_KEY, json.dumps(quota), ex=seconds)
    except RedisError:
        log.warning("could not cache the Kaggle quota")
    return quota
