"""A job's row keeps the marks its live polls compare against: its last log line, status change and metric point,
and how many artifacts it has, moved by whatever records them."""
from __future__ import annotations

import pytest

from app.db import database
from app.jobs.artifacts import recount
from app.jobs.events import add_event, add_events
from app.models import Artifact, Job, JobEvent
from tests.support.factories import make_dataset, make_job


@pytest.fixture
def job(app, user):
    """A job of the user, inside the app with a connection for the whole test."""
    with app.app_context(), database.connection_context():
        yield make_job(user, make_dataset(user))


def marks(job) -> tuple:
    row = Job.get_by_id(job.id)
    return row.last_log_id, row.last_status_id, row.last_point_id, row.artifact_count


def last_id(job, kind: str) -> int:
    return JobEvent.select(JobEvent.id).where((JobEvent.job == job.id) & (JobEvent.kind == kind)).order_by(
        JobEvent.id.desc()).get().id


def test_each_kind_of_event_moves_its_own_mark(job):
    assert marks(job) == (None, None, None, 0)
    add_events(job, [("log", "one", None), ("metric", "m", {"type": "progress", "step": 1}), ("log", "two", None)])
    assert marks(job) == (last_id(job, "log"), None, last_id(job, "metric"), 0)
    point = last_id(job, "metric")
    add_event(job, "status", "running", {"to": "running"})
    assert marks(job) == (last_id(job, "log"), last_id(job, "status"), point, 0)


def test_a_stale_copy_of_the_job_never_moves_a_mark_back(job):
    add_events(job, [("log", "one", None)])
    stale = Job.get_by_id(job.id)
    add_events(job, [("log", "two", None)])
    add_events(stale, [("metric", "m", {"type": "progress", "step": 1})])
    assert marks(job)[0] == last_id(job, "log"), "the marks are read from the events, not from the copy"


def test_the_artifact_count_follows_the_rows(job):
    for name in ("a.bin", "b.bin"):
        Artifact.create(job=job.id, name=name, object_key=f"k/{name}", size_bytes=1)
    recount(job.id)
    assert marks(job)[3] == 2
