"""What an admin sees of every user beside their limits: their Kaggle link (never the key), their active jobs and
their account's GPU quota as last read; a fixed number of queries whatever the page size."""
from __future__ import annotations

import json

from redis.exceptions import RedisError

from app.jobs import capacity, states
from app.models import Job, KaggleAccount


def kaggle_links(user_ids: list[int]) -> dict[int, dict]:
    """Each user's Kaggle link: linked or not, the user name and kind (one query)."""
    found = {row.user_id: row for row in KaggleAccount.select().where(KaggleAccount.user.in_(user_ids))}
    return {user_id: {"linked": user_id in found, "username": found[user_id].username if user_id in found else None,
                      "kind": found[user_id].kind if user_id in found else None} for user_id in user_ids}


def active_jobs(user_ids: list[int]) -> dict[int, list[dict]]:
    """Each user's active jobs: id, name, status, backend and the account it runs on (one query)."""
    jobs = {user_id: [] for user_id in user_ids}
    query = (Job.select(Job.id, Job.owner, Job.name, Job.status, Job.backend, Job.backend_account)
             .where(Job.owner.in_(user_ids) & Job.status.in_(states.ACTIVE)).order_by(Job.id))
    for job in query:
        jobs[job.owner_id].append({"id": job.id, "name": job.name, "status": job.status, "backend": job.backend,
                                   "backend_account": job.backend_account})
    return jobs


def cached_quotas(redis, backend_names: list[str], user_ids: list[int]) -> dict[int, dict]:
    """Each user's GPU quota per backend as last read for them (one Redis round trip; never a call to Kaggle,
    so the page stays fast: a user's quota is read when they look at their dashboard)."""
    keys = [(user_id, name) for user_id in user_ids for name in backend_names]
    try:
        pipeline = redis.pipeline(transaction=False)
        for user_id, name in keys:
            pipeline.get(capacity.QUOTA_KEY.format(backend=name, owner=user_id))
        values = pipeline.execute()
    except RedisError:
        values = [None] * len(keys)
    quotas: dict[int, dict] = {user_id: {} for user_id in user_ids}
    for (user_id, name), value in zip(keys, values, strict=True):
        quotas[user_id][name] = json.loads(value) if value else None
    return quotas


def overview(user_ids: list[int], redis, backend_names: list[str]) -> dict[int, dict]:
    """Everything above, by user id."""
    links, jobs, quotas = kaggle_links(user_ids), active_jobs(user_ids), cached_quotas(redis, backend_names, user_ids)
    return {user_id: {"kaggle": links[user_id], "active_jobs": jobs[user_id], "gpu_quota": quotas[user_id]}
            for user_id in user_ids}
