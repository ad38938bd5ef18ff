"""What the dashboard shows, gathered in a fixed, small number of queries, and the services at a glance."""
from __future__ import annotations

import peewee

from app.models import Dataset, Job, User
from app.ops import health

RECENT = 5


# The columns of a job that its line on the dashboard shows (or that change what it shows).
SHOWN_JOB_FIELDS = ("id", "name", "status", "step", "total_steps", "metrics", "cancel_requested_at", "updated_at")


def shown_version(job: Job) -> tuple:
    """What a running job's line on the dashboard is drawn from, for the widget's ETag."""
    return tuple(str(getattr(job, name)) for name in SHOWN_JOB_FIELDS)


def status_counts(model, owner: User) -> dict[str, int]:
    """How many of the owner's rows are in each status (one grouped query)."""
    rows = (model.select(model.status, peewee.fn.COUNT(model.id).alias("n"))
            .where(model.owner == owner.id).group_by(model.status).tuples())
    return dict(rows)


def dashboard_summary(owner: User) -> dict:
    """Counts by status and the most recent datasets and jobs of owner."""
    return {
        "job_counts": status_counts(Job, owner),
        "dataset_counts": status_counts(Dataset, owner),
        "recent_jobs": list(Job.select().where(Job.owner == owner.id)
                            .order_by(Job.created_at.desc(), Job.id.desc()).limit(RECENT)),
        "recent_datasets": list(Dataset.select().where(Dataset.owner == owner.id)
                                .order_by(Dataset.created_at.desc(), Dataset.id.desc()).limit(RECENT)),
    }


def service_health(db, store, redis, queue_names: list[str]) -> dict:
    """The health document of /api/v1/health for the services a user depends on, on the request's connection."""
    checks = {
        # The request already holds a connection: a connection_context() here would close it on exit.
        "database": lambda: db.execute_sql("SELECT 1").fetchone() and None,
        "storage": store.check,
        "redis": health.redis_check(redis, queue_names),
        "workers": health.workers_check(redis),
    }
    document, _status = health.report(checks)
    return document
