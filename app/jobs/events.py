"""A job's history: status changes, log lines and metric points, and the progress they carry."""
from __future__ import annotations

from peewee import fn

from app.jobs import metric_points
from app.jobs.states import DONE, TERMINAL, can_move
from app.models import Job, JobEvent, utcnow
from app.webhooks import outbox

MAX_LINE_CHARS = 4000


def add_event(job: Job, kind: str, message: str = "", data: dict | None = None) -> None:
    """Append one event to the job's history."""
    add_events(job, [(kind, message, data)])


def add_events(job: Job, events: list[tuple[str, str, dict | None]]) -> None:
    """Append several (kind, message, data) events in one statement, in order (metric points numbered in their
    series first)."""
    if events:
        now = utcnow()
        rows = [{"job": job.id, "kind": kind, "message": message[:MAX_LINE_CHARS], "data": data, "created_at": now}
                for kind, message, data in events]
        metric_points.number(job.id, rows)
        JobEvent.insert_many(rows).execute()
        _mark(job.id, {kind for kind, _message, _data in events})


# The job's mark of its last event of each kind (what its live polls compare against).
MARKS = {"log": Job.last_log_id, "status": Job.last_status_id, "metric": Job.last_point_id}


def _mark(job_id: int, kinds: set[str]) -> None:
    """Move the job's marks of these kinds to its last event of each: one update, each value an index lookup
    (read from the table, so two writers at once leave the greatest)."""
    marks = {MARKS[kind]: JobEvent.select(fn.MAX(JobEvent.id)).where((JobEvent.job == job_id)
                                                                     & (JobEvent.kind == kind))
             for kind in kinds if kind in MARKS}
    if marks:
        Job.update(marks).where(Job.id == job_id).execute()


def move(job: Job, target: str, message: str, **fields) -> bool:
    """Change the job's status if it is still what job says (so two workers never both move it); logs it."""
    if not can_move(job.status, target):
        return False
    now = utcnow()
    extra = {"started_at": now} if target == "running" and job.started_at is None else {}
    if target in TERMINAL:
        extra.update(finished_at=now, stage=DONE, lease_owner=None, lease_until=None)
    changes = {"status": target, "updated_at": now, **extra, **fields}
    updated = Job.update(changes).where((Job.id == job.id) & (Job.status == job.status)).execute()
    if not updated:
        return False
    previous = job.status
    for name, value in changes.items():
        setattr(job, name, value)
    add_event(job, "status", message, {"from": previous, "to": target})
    outbox.job_moved(job, target)
    return True
