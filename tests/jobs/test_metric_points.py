"""Metric points numbered in their series as they are recorded, and the thinned series a chart reads by index."""
from __future__ import annotations

import pytest

from app.db import database
from app.jobs import metric_points
from app.jobs.events import add_event, add_events
from app.models import JobEvent
from tests.support.factories import make_dataset, make_job


@pytest.fixture
def job(app, user):
    """A job of the user, inside the app with a connection for the whole test."""
    with app.app_context(), database.connection_context():
        yield make_job(user, make_dataset(user))


def progress(step: int) -> tuple:
    return "metric", f"step {step}", {"type": "progress", "step": step, "loss": 1.0 / step}


def evaluation(step: int) -> tuple:
    return "metric", "eval", {"type": "eval", "step": step, "eval_loss": 2.0 / step}


def numbered(job) -> list[tuple]:
    rows = JobEvent.select(JobEvent.kind, JobEvent.series, JobEvent.point, JobEvent.level)
    return list(rows.where(JobEvent.job == job.id).order_by(JobEvent.id).tuples())


def test_points_are_numbered_in_their_series_across_batches(job):
    add_events(job, [progress(1), ("log", "hello", None), progress(2), evaluation(2)])
    add_event(job, *progress(3))
    add_events(job, [progress(4), evaluation(4), ("metric", "odd", {"type": "x" * 17, "step": 4})])
    assert numbered(job) == [("metric", "progress", 1, 0), ("log", None, None, None), ("metric", "progress", 2, 1),
                             ("metric", "eval", 1, 0), ("metric", "progress", 3, 0), ("metric", "progress", 4, 2),
                             ("metric", "eval", 2, 1), ("metric", None, None, None)]


@pytest.mark.parametrize("points", [1, 9, 10, 11, 37, 640])
def test_a_chart_draws_between_half_and_all_of_its_limit_evenly_spaced_and_the_last_point(job, points):
    limit = 10
    add_events(job, [progress(step) for step in range(1, points + 1)] + [evaluation(5), evaluation(10)])
    drawn = [(series, data["step"]) for data, series in metric_points.thinned(job.id, ("progress", "eval"), limit)]
    steps = [step for series, step in drawn if series == "progress"]
    assert steps[-1] == points, "the last point is always drawn"
    evenly = steps[:-1] if steps[-1] % (steps[0] or 1) else steps
    assert min(points, limit // 2) <= len(evenly) <= limit
    stride = evenly[0]
    assert evenly == list(range(stride, stride * len(evenly) + 1, stride)), "evenly spaced"
    assert [step for series, step in drawn if series == "eval"] == [5, 10]


def test_a_chart_up_to_a_snapshot_leaves_out_the_points_that_came_after(job):
    add_events(job, [progress(step) for step in range(1, 31)])
    upto = JobEvent.select(JobEvent.id).where(JobEvent.job == job.id).order_by(JobEvent.id.desc()).first().id
    add_events(job, [progress(step) for step in range(31, 41)])
    drawn = [data["step"] for data, _series in metric_points.thinned(job.id, ("progress",), 10, upto)]
    assert drawn[-1] == 30 and max(drawn) == 30


def test_thinning_level_is_the_least_that_keeps_a_series_within_the_limit():
    levels = [metric_points.thinning_level(points, 200) for points in (0, 200, 201, 400, 401, 9_000)]
    assert levels == [0, 0, 1, 1, 2, 6]
    assert [metric_points.level_of(point) for point in (1, 2, 3, 4, 12, 1 << 25)] == [0, 1, 0, 2, 2, 20]
