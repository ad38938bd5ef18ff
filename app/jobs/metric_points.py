"""A job's metric points numbered within their series, so that a chart reads a thinned series from an index.

Each metric event carries its series (its data's `type`: progress, eval…), its position in that series (`point`,
from 1) and its `level`: how many times 2 divides that position. A chart of n points draws the points of level
k or more, for the least k with n ≤ limit · 2^k: between limit / 2 and limit evenly spaced points, read by one
range of the (job, series, level, id) index, whatever the job's history, plus the series' last point.
"""
from __future__ import annotations

import orjson
from peewee import Case, Cast

from app.db import execute_compiled
from app.models import MAX_ID, Job, JobEvent

# Levels stop here: past limit · 2^20 points (200 million for a chart of 200) a chart simply draws more points.
MAX_LEVEL = 20


def level_of(point: int) -> int:
    """How many times 2 divides the position (MAX_LEVEL at most)."""
    return min((point & -point).bit_length() - 1, MAX_LEVEL)


def thinning_level(points: int, limit: int) -> int:
    """The least level whose points of a series of `points` are at most `limit`."""
    level = 0
    while points > limit << level and level < MAX_LEVEL:
        level += 1
    return level


def series_of(kind: str, data: dict | None) -> str | None:
    """The series of a metric event (the type its data names), None for any other event (or a type too long for
    the column: no chart draws one)."""
    series = (data or {}).get("type") if kind == "metric" else None
    return series if isinstance(series, str) and len(series) <= JobEvent.series.max_length else None


def number(job_id: int, rows: list[dict]) -> None:
    """Give each metric row of a batch about to be inserted (in order) its series, position and level, after
    the points the job has already: one query for the batch."""
    for row in rows:
        row["series"], row["point"], row["level"] = series_of(row["kind"], row.get("data")), None, None
    named = sorted({row["series"] for row in rows if row["series"]})
    if not named:
        return
    lengths = (_latest(Job.id, name, None, JobEvent.point) for name in named)
    last = Job.select(*lengths).where(Job.id == job_id).tuples().get()
    counts = dict(zip(named, last, strict=True))
    for row in rows:
        if row["series"]:
            counts[row["series"]] = point = (counts[row["series"]] or 0) + 1
            row["point"], row["level"] = point, level_of(point)


def thinned(job_id: int, names: tuple[str, ...], limit: int, upto: int = MAX_ID) -> list[tuple[dict, str]]:
    """(data, series) of each named series' points a chart of `limit` draws, and of its last point, in event
    order (only events up to `upto`: a snapshot, even if more points arrive meanwhile).

    One query: for each series two index lookups on its last point read the level to draw (from its position,
    the series' length) and its id; then one range of the (job, series, level, id) index gives the drawn points.
    """
    _query, cursor = execute_compiled(_thinned_query, {JOB_MARK: job_id, UPTO_MARK: upto}, names, limit)
    return [(orjson.loads(data), series) for data, series in cursor.fetchall()]


# Stand-ins for the job's id and the last event's in the compiled query (no other parameter takes these values).
JOB_MARK, UPTO_MARK = -7_401, -7_402


def _thinned_query(names: tuple[str, ...], limit: int):
    """thinned's query, with stand-ins for the job and the last event (compiling its 20-level CASE costs more
    than running it)."""
    drawn = None
    for name in names:
        level = Case(None, [(JobEvent.point <= limit << level, level) for level in range(MAX_LEVEL)], MAX_LEVEL)
        wanted = (JobEvent.series == name) & ((JobEvent.level >= _latest(JOB_MARK, name, UPTO_MARK, level))
                                              | (JobEvent.id == _latest(JOB_MARK, name, UPTO_MARK, JobEvent.id)))
        drawn = wanted if drawn is None else drawn | wanted
    # The data as text, decoded by orjson: our own small metric points, a hundred or more of them a poll.
    return (JobEvent.select(Cast(JobEvent.data, "text"), JobEvent.series)
            .where((JobEvent.job == JOB_MARK) & (JobEvent.id <= UPTO_MARK) & drawn).order_by(JobEvent.id))


def _latest(job_id, name: str, upto: int | None, column):
    """A column of the series' last point (up to event `upto`), as a subquery: an index lookup."""
    where = (JobEvent.job == job_id) & (JobEvent.series == name)
    if upto is not None:
        where &= JobEvent.id <= upto
    return JobEvent.select(column).where(where).order_by(JobEvent.id.desc()).limit(1)
