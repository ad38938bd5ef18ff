"""Polls that answer from a version: 304 after one query while nothing changed, only what changed otherwise.

The browser sends If-None-Match by itself (the answers carry an ETag and Cache-Control: no-cache); these tests
send it as the browser would, and count the app's queries per poll, also for a job with 10,000 events.
"""
from __future__ import annotations

import datetime
import html
import re

import pytest
from flask import render_template

from app.auth import service as accounts
from app.db import database, upgrade
from app.factory import create_app
from app.jobs.events import add_events
from app.models import Completion, Dataset, Job, JobEvent, utcnow
from app.web.jobs import live, views
from tests.support.accounts import PASSWORD
from tests.support.database import counted_queries
from tests.support.factories import make_artifact, make_dataset, make_event, make_job, running_job
from tests.support.pages import htmx
from tests.support.settings import make_settings

NEXT_POLL = re.compile(r'id="job-progress"[^>]*hx-get="([^"]+)"')


class Poller:
    """Polls one job as the page would: the URL its last answer carried, with the ETag the browser kept."""

    def __init__(self, browser, job_id: int):
        """Start from the job page: its progress widget's poll URL."""
        self.browser, self.etag = browser, None
        self.url = next_poll(browser.get(f"/jobs/{job_id}").get_data(as_text=True))

    def poll(self):
        """One poll; returns (response, its queries); follows the answer's next URL and ETag as a browser does."""
        headers = {**htmx("job-progress"), **({"If-None-Match": self.etag} if self.etag else {})}
        with counted_queries() as queries:
            response = self.browser.get(self.url, headers=headers)
        if response.status_code != 304:
            self.etag = response.headers.get("ETag")
            body = response.get_data(as_text=True)
            self.url = next_poll(body) if NEXT_POLL.search(body) else None
        return response, queries


def next_poll(body: str) -> str:
    """The URL the progress widget polls next."""
    return html.unescape(NEXT_POLL.search(body).group(1))


@pytest.mark.parametrize(("steps", "evals", "logs"), [(10, 2, 5), (9_000, 500, 500)], ids=["10", "10k-events"])
def test_an_unchanged_poll_is_a_304_after_one_query(browser, owner, in_db, steps, evals, logs):
    job = in_db(running_job, owner, steps=steps, evals=evals, logs=logs)
    poller = Poller(browser, job.id)
    first, _ = poller.poll()  # the page is current, but this request carried no ETag yet
    assert first.status_code == 200 and first.headers["Cache-Control"] == "no-cache, private"
    assert first.headers["ETag"].startswith('W/"')
    for _ in range(2):
        response, queries = poller.poll()
        assert response.status_code == 304 and response.get_data() == b""
        assert len(queries) == 1, queries
        assert response.headers["ETag"] == first.headers["ETag"]


@pytest.mark.parametrize(("steps", "evals", "logs"), [(10, 2, 5), (9_000, 500, 500)], ids=["10", "10k-events"])
def test_a_changed_poll_sends_only_what_changed_in_at_most_three_queries(browser, owner, in_db, steps, evals, logs):
    job = in_db(running_job, owner, steps=steps, evals=evals, logs=logs)
    poller = Poller(browser, job.id)
    poller.poll()
    in_db(make_event, job, message="a new line")
    logged, queries = poller.poll()
    body = logged.get_data(as_text=True)
    assert logged.status_code == 200 and len(queries) == 2, queries  # the job, the lines after the cursor
    assert 'hx-swap-oob="beforeend:#job-log-lines"' in body and body.count('class="log-line') == 1
    assert "a new line" in body and "log line 0" not in body, "lines the page has are not sent again"
    assert 'id="job-chart"' not in body, "no new point: the chart is not redrawn"

    in_db(make_event, job, kind="metric", message="step", data={"type": "progress", "step": steps + 1, "loss": 0.5})
    in_db(lambda: Job.update(step=steps + 1).where(Job.id == job.id).execute())
    charted, queries = poller.poll()
    body = charted.get_data(as_text=True)
    assert charted.status_code == 200 and len(queries) == 2, queries  # the job, the chart (no new line)
    assert 'id="job-chart" class="loss-chart" hx-swap-oob="true"' in body and "log-line" not in body
    assert f"{steps + 1:,} / 100" in body, "the numbers come with every changed answer"

    in_db(make_event, job, message="and another")
    in_db(make_event, job, kind="metric", message="step", data={"type": "progress", "step": steps + 2, "loss": 0.4})
    both, queries = poller.poll()
    assert both.status_code == 200 and len(queries) == 3, queries
    assert "and another" in both.get_data(as_text=True) and 'id="job-chart"' in both.get_data(as_text=True)
    # The cursor moved, so the next URL is new to the browser's cache: one plain answer, then 304s again.
    settled, queries = poller.poll()
    assert settled.status_code == 200 and len(queries) == 1 and "log-line" not in settled.get_data(as_text=True)
    assert poller.poll()[0].status_code == 304


def test_pages_polling_one_version_share_its_charts_drawn_once_in_each_language(browser, owner, in_db):
    job = in_db(running_job, owner, steps=40)
    english = browser.get(f"/jobs/{job.id}/progress", headers=htmx("job-progress")).get_data(as_text=True)
    assert '<h2>Loss</h2>' in english
    spanish = {**htmx("job-progress"), "Accept-Language": "es-ES,es;q=0.9"}
    with counted_queries() as queries:
        translated = browser.get(f"/jobs/{job.id}/progress", headers=spanish).get_data(as_text=True)
    assert len(queries) == 3, "a language's first page draws its own charts"
    assert '<h2>Pérdida</h2>' in translated and '<h2>Loss</h2>' not in translated
    with counted_queries() as queries:
        again = browser.get(f"/jobs/{job.id}/progress", headers=htmx("job-progress")).get_data(as_text=True)
    assert len(queries) == 2 and again == english, "the job and its log tail; the charts as drawn before"

    in_db(make_event, job, kind="metric", message="step", data={"type": "progress", "step": 41, "loss": 9.5})
    newer = browser.get(f"/jobs/{job.id}/progress", headers=htmx("job-progress")).get_data(as_text=True)
    assert "9.5" in newer and newer != english, "a new point is a new version: the charts are drawn again"


def test_a_job_given_a_deleted_jobs_id_never_shows_its_charts(browser, owner, in_db):
    job = in_db(running_job, owner, steps=5)
    path = f"/jobs/{job.id}/progress"
    assert "(5 points)" in browser.get(path, headers=htmx("job-progress")).get_data(as_text=True)
    events = in_db(lambda: list(JobEvent.select().where(JobEvent.job == job.id).order_by(JobEvent.id).dicts()))
    in_db(lambda: job.delete_instance(recursive=True))

    def same_ids_again():
        """A new job with the deleted one's id and event ids (SQLite gives the highest ids again), other values."""
        reborn = running_job(owner, steps=0, id=job.id, created_at=utcnow())
        for event in events:
            data = event["data"] and {**event["data"], "loss": 7.25}
            JobEvent.insert({**event, "data": data}).execute()
        last_point = max(event["id"] for event in events if event["kind"] == "metric")
        Job.update(last_point_id=last_point).where(Job.id == reborn.id).execute()

    in_db(same_ids_again)
    body = browser.get(path, headers=htmx("job-progress")).get_data(as_text=True)
    assert "7.25" in body, "the new job's own points, not the charts drawn for the deleted one"


def test_numbers_alone_change_in_one_query(browser, owner, in_db):
    job = in_db(running_job, owner, steps=10)
    poller = Poller(browser, job.id)
    poller.poll()
    in_db(lambda: Job.update(epoch=0.5, metrics={"loss": 0.9, "eta_seconds": 7.0}).where(Job.id == job.id).execute())
    response, queries = poller.poll()
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and len(queries) == 1, queries
    assert "0.50" in body and "7 s" in body and "log-line" not in body and 'id="job-chart"' not in body


def test_the_end_stops_polling_and_reloads_the_files_and_a_finished_page_never_polls(browser, owner, in_db):
    job = in_db(running_job, owner, steps=10)
    poller = Poller(browser, job.id)
    poller.poll()
    in_db(make_artifact, job, name="adapter/adapter_model.safetensors")
    in_db(lambda: Job.update(status="succeeded", step=100).where(Job.id == job.id).execute())
    in_db(make_event, job, kind="status", message="succeeded", data={"from": "running", "to": "succeeded"})
    done, queries = poller.poll()
    body = done.get_data(as_text=True)
    assert done.status_code == 286 and len(queries) <= 3, queries
    assert poller.url is None, "the finished widget carries no trigger"
    assert 'value="100.0"' in body and "Cancel job" not in body
    loader = re.search(r'<section id="job-artifacts"[^>]*hx-get="([^"]+)"[^>]*hx-trigger="load"', body)
    assert loader, "the artifact list reloads itself once the job has ended"
    files = browser.get(loader.group(1), headers=htmx("job-artifacts")).get_data(as_text=True)
    assert "adapter/adapter_model.safetensors" in files and "hx-swap-oob" not in files
    page = browser.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert "hx-trigger" not in re.search(r'<section id="job-progress".*?>', page, re.S).group(0)


def test_a_page_on_an_empty_job_shows_the_first_lines_when_they_come(browser, owner, in_db):
    job = in_db(make_job, owner, status="running", dataset=in_db(make_dataset, owner))
    page = browser.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert '<pre id="job-log-lines"></pre>' in page and "Nothing logged yet." in page
    poller = Poller(browser, job.id)
    in_db(make_event, job, message="first words")
    body = poller.poll()[0].get_data(as_text=True)
    assert 'hx-swap-oob="beforeend:#job-log-lines"' in body and "first words" in body


def test_polls_of_someone_elses_job_or_signed_out_are_refused(browser, client, make_user, in_db):
    other = in_db(make_job, make_user(), status="running")
    assert browser.get(f"/jobs/{other.id}/progress", headers=htmx("job-progress")).status_code == 404
    browser.post("/logout", data={"csrf_token": browser.csrf})
    response = browser.get(f"/jobs/{other.id}/progress", headers=htmx("job-progress"))
    assert response.status_code in (302, 401) and "ETag" not in response.headers
    assert in_db(lambda: JobEvent.select().where(JobEvent.job == other.id).count()) == 0


def revalidated(browser, path: str, target: str):
    """A poll of path, then the same poll with the ETag it got, as a browser revalidates; (first, second, queries)."""
    first = browser.get(path, headers=htmx(target))
    with counted_queries() as queries:
        second = browser.get(path, headers={**htmx(target), "If-None-Match": first.headers["ETag"]})
    return first, second, queries


def test_the_dashboard_widget_is_a_304_while_no_running_job_moved(browser, owner, in_db):
    job = in_db(running_job, owner, steps=30, total=120)
    first, second, queries = revalidated(browser, "/dashboard/running", "running-jobs")
    assert first.status_code == 200 and second.status_code == 304 and len(queries) == 1, queries
    in_db(lambda: Job.update(step=60).where(Job.id == job.id).execute())
    moved = browser.get("/dashboard/running", headers={**htmx("running-jobs"), "If-None-Match": first.headers["ETag"]})
    assert moved.status_code == 200 and 'value="50.0"' in moved.get_data(as_text=True)


def test_a_processing_dataset_report_is_a_304_until_validation_ends(browser, owner, in_db):
    dataset = in_db(make_dataset, owner, status="processing", example_count=None)
    path = f"/datasets/{dataset.id}/report"
    first, second, queries = revalidated(browser, path, "dataset-report")
    assert first.status_code == 200 and second.status_code == 304 and len(queries) == 1, queries
    in_db(lambda: Dataset.update(status="invalid", updated_at=Dataset.updated_at).where(Dataset.id == dataset.id)
          .execute())
    done = browser.get(path, headers={**htmx("dataset-report"), "If-None-Match": first.headers["ETag"]})
    assert done.status_code == 286 and "hx-trigger" not in done.get_data(as_text=True)


def test_a_playground_answer_being_generated_is_a_304_until_a_token_comes(browser, owner, in_db, make_user):
    job = in_db(make_job, owner, status="succeeded")
    answer = in_db(Completion.create, job=job.id, owner=owner.id, messages=[{"role": "user", "content": "hi"}],
                   max_tokens=8, status="running")
    path = f"/jobs/{job.id}/playground/{answer.id}"
    first, second, queries = revalidated(browser, path, f"completion-{answer.id}")
    assert first.status_code == 200 and second.status_code == 304 and len(queries) == 1, queries
    in_db(lambda: Completion.update(text="Hel", tokens=1).where(Completion.id == answer.id).execute())
    grown = browser.get(path, headers={**htmx(), "If-None-Match": first.headers["ETag"]})
    assert grown.status_code == 200 and "Hel" in grown.get_data(as_text=True)
    other = in_db(make_job, make_user(), status="succeeded")
    assert browser.get(f"/jobs/{other.id}/playground/{answer.id}", headers=htmx()).status_code == 404


def test_the_results_section_is_a_304_until_an_evaluation_comes_or_the_job_ends(browser, owner, in_db):
    job = in_db(running_job, owner, steps=30, evals=2)
    path, target = f"/jobs/{job.id}/results", "job-results"
    first, second, queries = revalidated(browser, path, target)
    assert first.status_code == 200 and 'hx-trigger="every 5s"' in first.get_data(as_text=True)
    assert second.status_code == 304 and len(queries) == 1, queries

    def poll():
        return browser.get(path, headers={**htmx(target), "If-None-Match": first.headers["ETag"]})

    in_db(add_events, job, [("metric", "step 31", {"type": "progress", "step": 31, "loss": 0.5})])
    assert poll().status_code == 304, "a training step changes nothing the section shows"
    in_db(add_events, job, [("metric", "eval", {"type": "eval", "step": 31, "eval_loss": 0.4,
                                                "eval_accuracy": 0.75})])
    evaluated = poll()
    assert evaluated.status_code == 200 and evaluated.headers["ETag"] != first.headers["ETag"]
    in_db(lambda: Job.update(status="succeeded").where(Job.id == job.id).execute())
    ended = browser.get(path, headers={**htmx(target), "If-None-Match": evaluated.headers["ETag"]})
    assert ended.status_code == 200 and "hx-trigger" not in ended.get_data(as_text=True)


@pytest.mark.parametrize("state", [
    {"status": "queued", "stage": "submit", "backend_ref": {"waiting_reason": "Waiting for a free GPU session."}},
    {"status": "running", "backend": "kaggle", "backend_account": "someone",
     "backend_ref": {"kernel": "k", "session": 2}},
    {"status": "running", "paused_at": utcnow()},
    {"status": "running", "cancel_requested_at": utcnow()},
    {"status": "running", "method": "dpo", "metrics": {"loss": 0.6, "reward_margin": 0.4, "reward_accuracy": 0.75}},
    {"status": "failed", "error": "stage run failed after 6 attempts: boom", "finished_at": utcnow()},
    {"status": "succeeded", "finished_at": utcnow()},
], ids=["queued-waiting", "kaggle-session", "paused", "cancelling", "preference", "failed", "succeeded"])
def test_a_poll_reading_only_its_columns_answers_what_the_whole_row_would(app, owner, in_db, state):
    job = in_db(running_job, owner, steps=30, evals=2, logs=3)
    in_db(make_artifact, job)
    in_db(lambda: Job.update(**state).where(Job.id == job.id).execute())

    with app.test_request_context(), database.connection_context():  # one request: one CSRF token in both
        polled, whole = live.live_job(job.id, owner.id, True), live.live_job(job.id, owner.id, False)
        answers = [render_template("jobs/_changes.html", job=row, changes=live.changes_since(row, live.Cursor()))
                   for row in (polled, whole)]
    assert answers[0] == answers[1]
    assert live.etag_parts(polled, live.Cursor()) == live.etag_parts(whole, live.Cursor())


def test_a_polled_job_is_built_as_peewee_builds_the_whole_row_on_sqlite(tmp_path, redis_url):
    # A poll builds its job from the row itself (live._polled_job): each column converted as peewee's reader does,
    # which matters most on SQLite (dates and JSON come back as text).
    app = create_app(make_settings(tmp_path, f"sqlite:///{tmp_path}/studio.db", redis_url))
    with app.app_context(), database.connection_context():
        upgrade()
        owner = accounts.create_user("poller@example.com", PASSWORD)
        job = running_job(owner, steps=3, evals=1, logs=2)
        Job.update(metrics={"loss": 1.5}, paused_at=utcnow()).where(Job.id == job.id).execute()
        polled, whole = live.live_job(job.id, owner.id, True), live.live_job(job.id, owner.id, False)
        for name in live.POLL_FIELDS:
            assert getattr(polled, name) == getattr(whole, name), name
            assert type(getattr(polled, name)) is type(getattr(whole, name)), name
        assert isinstance(polled.paused_at, datetime.datetime) and polled.metrics == {"loss": 1.5}
        assert [getattr(polled.owner, name) for name in live.POLL_USER_FIELDS] == \
               [getattr(whole.owner, name) for name in live.POLL_USER_FIELDS]
        assert not polled.dirty_fields and live.live_job(job.id, owner.id + 1, True) is None
        lines = views.log_tail(job)  # built from its rows the same way
        expected = list(JobEvent.select().where((JobEvent.job == job.id) & JobEvent.kind.in_(("log", "status")))
                        .order_by(JobEvent.id))
        assert [(e.id, e.kind, e.message, e.created_at) for e in lines] == \
               [(e.id, e.kind, e.message, e.created_at) for e in expected]
        assert lines and isinstance(lines[0].created_at, datetime.datetime) and not lines[0].dirty_fields
