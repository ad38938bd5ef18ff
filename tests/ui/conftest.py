"""Fixtures of the page tests: a signed-in browser-like client, jobs with histories, and a query counter."""
from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from app.db import database
from app.models import Job, JobEvent, utcnow
from tests.conftest import csrf_token_from, login
from tests.factories import make_dataset, make_job

HTMX = {"HX-Request": "true"}


@pytest.fixture
def settings(settings):
    """The test app's settings without rate limits: page tests send many requests from one address."""
    return settings.model_copy(update={"rate_limits_enabled": False})


@pytest.fixture
def owner(make_user):
    """The user whose pages are looked at."""
    return make_user()


@pytest.fixture
def browser(client, owner):
    """A client signed in as the owner, carrying the CSRF token of its session as .csrf."""
    assert login(client, owner.email).status_code == 302
    client.csrf = csrf_token_from(client.get("/jobs").get_data(as_text=True))
    return client


@pytest.fixture
def in_db(app):
    """Run a function inside the app with a database connection (to build or read rows)."""
    def run(function, *args, **kwargs):
        with app.app_context(), database.connection_context():
            return function(*args, **kwargs)

    return run


def htmx(target: str | None = None) -> dict:
    """The headers htmx sends, aimed at the element with id target."""
    return {**HTMX, **({"HX-Target": target} if target else {})}


def running_job(owner, steps: int = 10, total: int = 100, evals: int = 2, logs: int = 5, **fields) -> Job:
    """A running job of owner that has reported `steps` training steps, some evaluations and log lines."""
    now = utcnow()
    job = make_job(owner, make_dataset(owner), status="running", stage="run", started_at=now, step=steps,
                   total_steps=total, epoch=round(steps / total, 2),
                   metrics={"loss": 1.0, "eta_seconds": 42.0, "tokens_per_second": 900.0}, **fields)
    add_history(job, steps, evals, logs)
    return job


def add_history(job: Job, steps: int, evals: int, logs: int) -> None:
    """Metric events for `steps` steps and `evals` evaluations, plus log lines, inserted in bulk."""
    rng = random.Random(job.id)
    rows = [{"job": job.id, "kind": "metric", "message": f"step {step}: loss",
             "data": {"type": "progress", "step": step, "loss": 2.0 / (1 + step / 50) + rng.random() * 0.05}}
            for step in range(1, steps + 1)]
    every = max(1, steps // max(evals, 1))
    rows += [{"job": job.id, "kind": "metric", "message": "eval",
              "data": {"type": "eval", "step": step, "eval_loss": 2.1 / (1 + step / 50)}}
             for step in range(every, steps + 1, every)][:evals]
    rows += [{"job": job.id, "kind": "log", "message": f"log line {index}", "data": None} for index in range(logs)]
    for start in range(0, len(rows), 1000):
        JobEvent.insert_many(rows[start:start + 1000]).execute()


@contextmanager
def counted_queries() -> Iterator[list[str]]:
    """Record the SQL of every query the app runs inside the block (peewee's query hooks)."""
    queries: list[str] = []

    def record(event):
        queries.append(event.sql)

    database.obj.query_hooks.append(record)
    try:
        yield queries
    finally:
        database.obj.query_hooks.remove(record)
