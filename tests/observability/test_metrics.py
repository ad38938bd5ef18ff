"""Prometheus metrics: valid exposition (promtool, prometheus_client's parser), exact counts under gunicorn."""
from __future__ import annotations

import io
import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import counters
from app.storage import InvalidKey
from tests.support.factories import make_job
from tests.support.http import fetch, fetch_many
from tests.support.logs import json_lines
from tests.support.web import gunicorn


def samples(text: str) -> dict[tuple, float]:
    """Every sample of an exposition as (name, sorted labels) → value, parsed by prometheus_client."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def promtool_check(text: str) -> subprocess.CompletedProcess:
    """`promtool check metrics` over the exposition."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing; `make test` installs it (Debian: apt-get install prometheus)"
    return subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)


def test_n_requests_across_two_gunicorn_workers_count_exactly_n(server_settings, tmp_path):
    log = tmp_path / "web.log"
    with gunicorn(server_settings, log, workers=2, web_threads=1, rate_limit_global="10000/minute") as web:
        fetch_many(web.url, [{"path": "/login"}] * 40 + [{"path": "/no-such-page"}] * 7)
        text = fetch(web.url, "/api/v1/metrics").body.decode()
    found = samples(text)
    login = (("endpoint", "auth.login"), ("method", "GET"), ("status", "200"))
    assert found[("studio_http_request_duration_seconds_count", login)] == 40
    assert found[("studio_http_request_duration_seconds_count",
                  (("endpoint", "unrouted"), ("method", "GET"), ("status", "404")))] == 7
    assert found[("studio_http_request_total", (("method", "GET"), ("status", "404")))] == 7
    served_by = {line["pid"] for line in json_lines(log) if line.get("path") == "/login"}
    assert len(served_by) == 2, "both workers must have served, or the sum proves nothing"
    assert promtool_check(text).returncode == 0, promtool_check(text).stderr


def test_the_exposition_passes_promtool_and_covers_every_area(app, client, user, redis):
    with app.app_context():
        from app.db import database

        with database.connection_context():
            make_job(user, status="running", backend="local")
        counters.record_job_step(redis, "workers.tasks.probe", 0.3, succeeded=False)
        with pytest.raises(RuntimeError), counters.kaggle_call(redis, "kernels_push"):
            raise RuntimeError("quota")
    client.get("/login")
    text = client.get("/api/v1/metrics").get_data(as_text=True)
    result = promtool_check(text)
    assert result.returncode == 0, result.stdout + result.stderr
    found = samples(text)
    assert found[("studio_jobs", (("backend", "local"), ("status", "running")))] == 1
    assert found[("studio_rq_queue_depth", (("queue", "default"),))] == 0
    assert found[("studio_rq_queue_depth", (("queue", "exports"),))] == 0
    assert found[("studio_rq_workers", ())] == 0
    assert found[("studio_info", (("version", app.config["VERSION"]),))] == 1
    assert found[("studio_job_step_failures_total", (("task", "workers.tasks.probe"),))] == 1
    assert found[("studio_job_step_duration_seconds_bucket",
                  (("le", "0.5"), ("outcome", "failed"), ("task", "workers.tasks.probe")))] == 1
    assert found[("studio_kaggle_api_calls_total", (("operation", "kernels_push"), ("outcome", "error")))] == 1
    assert any(name == "studio_db_query_duration_seconds_count" for name, _ in found)
    assert any(name == "studio_db_pool_connections_in_use" for name, _ in found)


def test_storage_operations_are_timed_and_their_failures_counted(app, client, redis):
    store = app.extensions["store"]
    store.put("obs/a.txt", io.BytesIO(b"hello"))
    with pytest.raises(InvalidKey):
        store.put("../escape", io.BytesIO(b"x"))
    found = samples(client.get("/api/v1/metrics").get_data(as_text=True))
    assert found[("studio_storage_operation_duration_seconds_count", (("operation", "put"),))] == 2
    assert found[("studio_storage_operation_errors_total", (("operation", "put"),))] == 1


def test_the_metrics_token_closes_the_endpoint_when_set(make_app):
    client = make_app(metrics_token="m" * 32).test_client()
    assert client.get("/api/v1/metrics").status_code == 401
    assert client.get("/api/v1/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    response = client.get("/api/v1/metrics", headers={"Authorization": "Bearer " + "m" * 32})
    assert response.status_code == 200 and "studio_info" in response.get_data(as_text=True)


def test_scraping_is_never_rate_limited(make_app):
    client = make_app(rate_limit_global="2/minute").test_client()
    assert {client.get("/api/v1/metrics").status_code for _ in range(5)} == {200}
