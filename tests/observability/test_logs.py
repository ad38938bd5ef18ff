"""Logs: JSON lines with a request id throughout (into the RQ jobs a request starts), and no secret in any line."""
from __future__ import annotations

import uuid

from flask import Flask

from app.extensions import enqueue
from tests.support.accounts import PASSWORD, csrf_token_from
from tests.support.http import fetch
from tests.support.logs import json_lines
from tests.support.waiting import wait_until
from tests.support.web import gunicorn
from tests.support.workers import worker_pool

KAGGLE_KEY = "5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b"


def test_every_line_is_json_and_each_request_is_logged_once_with_its_id(server_settings, tmp_path):
    log = tmp_path / "web.log"
    with gunicorn(server_settings, log) as web:
        given = fetch(web.url, "/api/v1/jobs", headers={"X-Request-ID": "trace-42.abc"})
        made = fetch(web.url, "/no-such-page", headers={"X-Request-ID": "bad id with spaces\u00e9"})
    lines = json_lines(log)
    requests = {line["request_id"]: line for line in lines if line.get("logger") == "app.request"}
    assert given.one("X-Request-ID") == "trace-42.abc"
    assert requests["trace-42.abc"] | {"duration_ms": 0} == {
        **requests["trace-42.abc"], "method": "GET", "path": "/api/v1/jobs", "endpoint": "api.list_jobs",
        "status": 401, "client_ip": "127.0.0.1", "user_id": None, "level": "INFO", "duration_ms": 0}
    assert requests["trace-42.abc"]["duration_ms"] > 0
    made_id = made.one("X-Request-ID")
    assert made_id != "bad id with spaces\u00e9" and requests[made_id]["status"] == 404
    assert sum(1 for line in lines if line.get("request_id") == made_id and line["logger"] == "app.request") == 1
    assert {"gunicorn.error", "app.request"} <= {line["logger"] for line in lines}


def test_a_request_carrying_secrets_leaves_none_of_them_in_any_log_line(server_settings, tmp_path, make_user,
                                                                        make_token):
    user = make_user()
    token = make_token(user)
    log = tmp_path / "web.log"
    with gunicorn(server_settings, log, log_level="DEBUG", kaggle_key=KAGGLE_KEY) as web:
        fetch(web.url, "/api/v1/jobs", headers={"Authorization": f"Bearer {token}", "X-Kaggle-Key": KAGGLE_KEY})
        page = fetch(web.url, "/login")
        cookie = page.one("Set-Cookie").split(";")[0]
        csrf = csrf_token_from(page.body.decode())
        body = f"email={user.email}&password={PASSWORD.replace(' ', '+')}x&csrf_token={csrf}&kaggle_key={KAGGLE_KEY}"
        fetch(web.url, "/login", method="POST", body=body.encode(),
              headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
        fetch(web.url, f"/api/v1/jobs?token={token}&kaggle_key={KAGGLE_KEY}",
              headers={"Authorization": f"Bearer {token}"})
    text = log.read_text()
    json_lines(log)
    assert "app.request" in text and '"status": 422' in text  # the requests were logged, the login refused
    for secret in (token, token.removeprefix("fts_"), PASSWORD, KAGGLE_KEY, csrf, cookie.split("=", 1)[1]):
        assert secret not in text, secret


def test_the_request_id_travels_into_the_jobs_it_starts(app: Flask, settings, redis, tmp_path):
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    with app.test_request_context(headers={"X-Request-ID": request_id}):
        app.preprocess_request()
        job = enqueue("workers.tasks.probe")
    assert job.meta["request_id"] == request_id
    log = tmp_path / "worker.log"
    with worker_pool(settings, log):
        wait_until(lambda: job.get_status(refresh=True) == "finished", 60, "the probe job to run")
        wait_until(lambda: job.id in log.read_text(), 10, "the job's log line")
    job_lines = [line for line in json_lines(log) if line.get("job_id") == job.id]
    assert job_lines and all(line["request_id"] == request_id for line in job_lines)
