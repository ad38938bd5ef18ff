"""A job page's live part as versions: what the page shows (a cursor), what changed since, in at most 3 queries.

The page carries a cursor in its poll URL: the last event it has, the last metric point its chart draws and how
many files its list shows. One query reads the job's row, which keeps those three marks (app/jobs/events.py,
app/jobs/artifacts.py), with its owner for the session; an unchanged job is a 304 after it. A changed one reads
only what moved: the log lines after the cursor (appended by the page), the thinned chart when new points
arrived; the numbers come with the job row.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime

from flask import render_template
from flask_babel import get_locale
from markupsafe import Markup

from app.db import database, execute_compiled, model_from_row
from app.jobs import states
from app.models import Job, JobEvent, User
from app.pagination import int_arg
from app.web.jobs import views

# The job row's columns that the live widgets show (or that change what they show).
SHOWN_FIELDS = ("status", "step", "total_steps", "epoch", "metrics", "error", "cancel_requested_at", "paused_at",
                "started_at", "finished_at", "updated_at")


@dataclass(frozen=True)
class Cursor:
    """What a page shows already: events up to `after`, chart points up to `points`, `files` artifacts."""

    after: int = 0
    points: int = 0
    files: int = 0

    @classmethod
    def from_args(cls, args) -> Cursor:
        """The cursor of a poll URL; ValidationFailed names a bad part."""
        return cls(*(int_arg(args, name, 0, minimum=0) for name in ("after", "points", "files")))

    @classmethod
    def of(cls, job: Job) -> Cursor:
        """The cursor of a page that shows everything the job (read by live_job) has now."""
        return cls(job.last_event_id, job.last_point_id or 0, job.artifact_count)

    def as_args(self) -> dict:
        """The cursor as poll URL arguments."""
        return {"after": self.after, "points": self.points, "files": self.files}


def live_job(job_id: int, user_id: int, polled: bool = False) -> Job | None:
    """The user's job (None for another's or a deactivated user), its owner loaded, with the marks its row keeps
    (its last log line, status change and metric point, its artifact count): one query of two rows by their keys.
    `polled`: only what a poll reads (POLL_FIELDS, and of the owner what a request needs)."""
    query, cursor = execute_compiled(_live_query, {JOB_MARK: job_id, USER_MARK: user_id}, polled)
    if polled:
        row = cursor.fetchone()
        return None if row is None else _polled_job(row)
    return next(iter(query._get_cursor_wrapper(cursor)), None)  # as .first() would read it


def _polled_job(row: tuple) -> Job:
    """The job of a poll's row, its owner loaded, built from the columns directly (app.db.model_from_row)."""
    job = model_from_row(Job, POLLED_COLUMNS[:len(POLL_FIELDS)], row[:len(POLL_FIELDS)])
    job.owner = model_from_row(User, POLLED_COLUMNS[len(POLL_FIELDS):], row[len(POLL_FIELDS):])
    job._dirty.clear()
    return job


# The job's columns a progress poll reads: what it shows (SHOWN_FIELDS), what its widgets name, and its marks.
# Building the whole row (the settings and options as JSON too) cost a 304 about as much as its query.
# tests/ui/test_live_polls.py renders every kind of job both ways and compares.
POLL_FIELDS = (*SHOWN_FIELDS, "id", "owner", "name", "method", "backend_ref", "backend_account", "created_at",
               "last_log_id", "last_status_id", "last_point_id", "artifact_count")
# Of the owner: what a request reads of its current_user (its id for the log, the language it chose).
POLL_USER_FIELDS = ("id", "is_active", "is_admin", "locale")
POLLED_COLUMNS = (*(getattr(Job, name) for name in POLL_FIELDS), *(getattr(User, name) for name in POLL_USER_FIELDS))

# Stand-ins for the ids in the compiled query, swapped for the real ones at each poll (no other parameter of the
# query takes these values).
JOB_MARK, USER_MARK = -7_301, -7_302


def _live_query(polled: bool):
    """live_job's query (the whole rows, or a poll's columns), with stand-ins for the ids."""
    columns = POLLED_COLUMNS if polled else [Job, User]
    query = (Job.select(*columns).join(User, on=(Job.owner == User.id))
             .where((Job.id == JOB_MARK) & (Job.owner == USER_MARK) & User.is_active).limit(1))
    return query


def etag_parts(job: Job, cursor: Cursor) -> tuple:
    """What the answer to a poll with this cursor is drawn from: the job's shown fields and its marks."""
    shown = tuple(str(getattr(job, name)) for name in SHOWN_FIELDS)
    return job.id, shown, Cursor.of(job), cursor


@dataclass(frozen=True)
class Changes:
    """What a poll sends: the numbers always, the rest only when it moved."""

    progress: views.Progress
    cursor: Cursor                       # the page's cursor once these changes are applied
    log: list[JobEvent]                  # new lines, to append
    charts: Markup | None                # the charts, swapped in out of band; None: the page's are current
    reload_files: bool                   # the artifact list changed (or its wording did: the job ended)


def changes_since(job: Job, cursor: Cursor) -> Changes:
    """What changed since the cursor, in at most two queries (log lines after it, the chart when points came)."""
    last_event, last_point = job.last_event_id, job.last_point_id or 0
    log = views.log_tail(job, after=cursor.after, upto=last_event) if last_event > cursor.after else []
    charts = drawn_charts(job) if last_point > cursor.points else None
    reload_files = job.artifact_count != cursor.files or job.status in states.TERMINAL
    return Changes(views.progress_of(job), Cursor.of(job), log, charts, reload_files)


def drawn_charts(job: Job) -> Markup:
    """The job's charts up to its last metric point, as a poll swaps them in, drawn once per version and language.

    Points are only ever added, so the charts up to a point (with the job's total steps, which set the x axis, and
    its method, which adds a preference run's reward charts) never change: every open page of a running job that
    polls after a new point gets them from here, and only the first pays for the query and the drawing.
    The job's creation time tells a job from a deleted one whose id SQLite gave again."""
    return _drawn_charts(database.obj, job.id, job.created_at, job.last_point_id or 0, job.total_steps,
                         job.method, str(get_locale()))


# Charts kept per process: a few versions of each of the jobs running at once is plenty.
CHART_VERSIONS = 256


@functools.lru_cache(maxsize=CHART_VERSIONS)
def _drawn_charts(_database, job_id: int, _created_at: datetime, last_point: int, total_steps: int | None,
                  method: str, _locale: str) -> Markup:
    """The charts of a version (the key is every argument; rendered in the request's language, which is one)."""
    job = Job(id=job_id, total_steps=total_steps, method=method)
    series = views.metric_series(job, upto=last_point)
    drawn = render_template("jobs/_charts_oob.html", chart=views.loss_chart(job, series),
                            reward_charts=views.reward_charts(job, series))
    return Markup(drawn)  # noqa: S704 -- the output of an autoescaping template, inserted as it was rendered
