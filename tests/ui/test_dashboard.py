"""The dashboard: what to do first, running jobs with live progress, counts, recent work, service health."""
from __future__ import annotations

from app.models import Job
from tests.support.database import counted_queries
from tests.support.factories import make_dataset, make_job, running_job
from tests.support.pages import htmx


def test_a_new_user_is_told_what_to_do_first(browser):
    html = browser.get("/").get_data(as_text=True)
    assert "No datasets yet." in html and "Upload a JSONL, JSON or CSV file" in html
    assert "Nothing is training right now." in html
    assert 'hx-get="/dashboard/health" hx-trigger="load"' in html
    assert "/dashboard/quota" not in html, "no Kaggle quota when Kaggle is not an enabled backend"


def test_with_a_ready_dataset_and_no_job_the_dashboard_points_at_the_new_job_form(browser, owner, in_db):
    in_db(make_dataset, owner)
    html = browser.get("/").get_data(as_text=True)
    assert "No jobs yet." in html and 'href="/jobs/new">Start a fine-tuning job</a>' in html


def test_running_jobs_show_live_progress_and_counts_link_to_filtered_lists(browser, owner, in_db):
    job = in_db(running_job, owner, steps=30, total=120)
    in_db(make_job, owner, status="succeeded", name="finished earlier")
    with counted_queries() as queries:
        html = browser.get("/").get_data(as_text=True)
    assert len(queries) == 6, queries  # user, running jobs, two counts, recent jobs, recent datasets
    assert f'href="/jobs/{job.id}">{job.name}</a>' in html
    assert f'<progress value="25.0" max="100" aria-label="Progress of {job.name}"></progress>' in html
    assert "about 42 s left" in html and 'hx-get="/dashboard/running" hx-trigger="every 3s"' in html
    assert 'href="/jobs?status=succeeded"' in html and "finished earlier" in html


def test_running_widget_polls_while_a_job_is_active_then_stops_with_286(browser, owner, in_db):
    job = in_db(running_job, owner)
    live = browser.get("/dashboard/running", headers=htmx("running-jobs"))
    assert live.status_code == 200 and 'hx-trigger="every 3s"' in live.get_data(as_text=True)
    in_db(lambda: Job.update(status="failed").where(Job.id == job.id).execute())
    done = browser.get("/dashboard/running", headers=htmx("running-jobs"))
    assert done.status_code == 286
    assert "hx-trigger" not in done.get_data(as_text=True) and "Nothing is training" in done.get_data(as_text=True)


def test_health_widget_lists_each_service_at_a_glance(browser):
    html = browser.get("/dashboard/health", headers=htmx("service-health")).get_data(as_text=True)
    assert "<html" not in html
    for service in ("database", "storage", "redis", "workers"):
        assert f"<strong>{service}</strong>" in html
    # No worker runs in this test: the Studio is degraded, and says why.
    assert "badge-health-degraded" in html and "no worker is running" in html


def test_quota_widget_is_404_when_kaggle_is_not_enabled(browser):
    assert browser.get("/dashboard/quota", headers=htmx("gpu-quota")).status_code == 404
