"""Quotas per user: active jobs, stored bytes, uploads per day; set by admins; each refusal names its limit."""
from __future__ import annotations

import io
import threading

import pytest

from app.db import database
from app.models import User
from tests.support.data import as_jsonl, examples
from tests.support.factories import make_dataset, make_job

GENEROUS = {"rate_limit_expensive": "100000/minute", "rate_limit_global": "100000/minute"}
JOB = {"base_model": "tiny-random-llama", "backend": "local", "method": "lora", "preset": "quick"}


@pytest.fixture
def quota_app(make_app):
    """An app whose rate limits stay out of the way, with quota settings as given."""
    return lambda **quotas: make_app(**GENEROUS, **quotas)


@pytest.fixture
def member(make_user, make_token):
    """A user (not an admin), their API headers and one ready dataset of theirs."""
    def make(app):
        owner = make_user()
        with app.app_context(), database.connection_context():
            dataset = make_dataset(owner)
        return owner, {"Authorization": f"Bearer {make_token(owner)}"}, dataset.id
    return make


def upload(client, headers, size_records: int = 20):
    """POST a small valid JSONL dataset; the response."""
    form = {"file": (io.BytesIO(as_jsonl(examples("chat", size_records))), "chat.jsonl")}
    return client.post("/api/v1/datasets", headers=headers, data=form, content_type="multipart/form-data")


def refused_limit(response) -> str:
    """The limit a refusal names."""
    return response.get_json()["error"]["details"]["limit"]


def test_active_jobs_beyond_the_limit_are_refused_with_429_naming_it(quota_app, member):
    app = quota_app(quota_max_active_jobs=2)
    _owner, headers, dataset_id = member(app)
    client = app.test_client()
    codes = [client.post("/api/v1/jobs", headers=headers, json={**JOB, "dataset_id": dataset_id}).status_code
             for _ in range(2)]
    refused = client.post("/api/v1/jobs", headers=headers, json={**JOB, "dataset_id": dataset_id})
    assert codes == [201, 201] and refused.status_code == 429
    assert refused_limit(refused) == "max_active_jobs"
    assert refused.get_json()["error"]["details"]["max"] == 2


def test_parallel_submissions_cannot_overrun_the_active_job_limit(quota_app, member):
    app = quota_app(quota_max_active_jobs=1)
    _owner, headers, dataset_id = member(app)
    statuses, barrier = [], threading.Barrier(6)

    def submit():
        client = app.test_client()
        barrier.wait()
        statuses.append(client.post("/api/v1/jobs", headers=headers, json={**JOB, "dataset_id": dataset_id})
                        .status_code)

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201] + [429] * 5


def test_uploads_beyond_the_daily_limit_are_refused_with_429(quota_app, member):
    app = quota_app(quota_max_uploads_per_day=2)
    _owner, headers, _dataset = member(app)
    client = app.test_client()
    assert [upload(client, headers).status_code for _ in range(2)] == [201, 201]
    refused = upload(client, headers)
    assert refused.status_code == 429 and refused_limit(refused) == "max_uploads_per_day"
    # The oldest upload of the day frees its place in about 24 hours: the header says when, as the details do.
    retry_after = refused.get_json()["error"]["details"]["retry_after"]
    assert refused.headers["Retry-After"] == str(retry_after) and 86_000 < retry_after <= 86_400


def test_an_upload_beyond_the_stored_bytes_is_refused_with_409(quota_app, member):
    app = quota_app(quota_max_stored_bytes=7_000)
    _owner, headers, _dataset = member(app)  # a ready dataset of 1234 bytes already counts
    client = app.test_client()
    assert upload(client, headers, 10).status_code == 201
    refused = upload(client, headers, 40)
    assert refused.status_code == 409 and refused_limit(refused) == "max_stored_bytes"
    assert refused.get_json()["error"]["details"]["current"] > 1234


def test_backends_show_a_user_their_own_running_jobs_only(app, client, user, make_user, make_token):
    with app.app_context(), database.connection_context():
        other = make_user()
        for owner in (user, other, other):
            make_job(owner, status="running")
    data = client.get("/api/v1/backends", headers={"Authorization": f"Bearer {make_token(user)}"}).get_json()["data"]
    assert {backend["name"]: backend["running"] for backend in data}["local"] == 1


def test_admin_endpoints_answer_403_to_everyone_else(client, user, make_token):
    headers = {"Authorization": f"Bearer {make_token(user)}"}
    for method, url in (("get", "/api/v1/admin/users"), ("patch", f"/api/v1/admin/users/{user.id}")):
        response = getattr(client, method)(url, headers=headers, json={"max_active_jobs": 99})
        assert response.status_code == 403 and response.get_json()["error"]["code"] == "forbidden"
    with client.application.app_context(), database.connection_context():
        assert User.get_by_id(user.id).max_active_jobs is None


def test_an_admin_sets_a_users_limits_and_they_apply(quota_app, member, make_user, make_token):
    app = quota_app(quota_max_active_jobs=5)
    owner, headers, dataset_id = member(app)
    admin = {"Authorization": f"Bearer {make_token(make_user(is_admin=True))}"}
    client = app.test_client()
    changed = client.patch(f"/api/v1/admin/users/{owner.id}", headers=admin, json={"max_active_jobs": 1})
    assert changed.status_code == 200
    assert changed.get_json()["limits"]["max_active_jobs"] == {"value": 1, "default": 5, "overridden": True}
    assert client.post("/api/v1/jobs", headers=headers, json={**JOB, "dataset_id": dataset_id}).status_code == 201
    assert client.post("/api/v1/jobs", headers=headers, json={**JOB, "dataset_id": dataset_id}).status_code == 429
    listed = {entry["email"]: entry for entry in client.get("/api/v1/admin/users", headers=admin).get_json()["data"]}
    assert listed[owner.email]["usage"]["active_jobs"] == 1
    back = client.patch(f"/api/v1/admin/users/{owner.id}", headers=admin, json={"max_active_jobs": None})
    assert back.get_json()["limits"]["max_active_jobs"] == {"value": 5, "default": 5, "overridden": False}


@pytest.mark.parametrize("body", [{"max_active_jobs": -1}, {"max_stored_bytes": "lots"}, {"max_uploads": 3},
                                  {"max_uploads_per_day": True}, [1]])
def test_bad_limits_are_a_422_naming_the_field(client, user, make_user, make_token, body):
    admin = {"Authorization": f"Bearer {make_token(make_user(is_admin=True))}"}
    response = client.patch(f"/api/v1/admin/users/{user.id}", headers=admin, json=body)
    assert response.status_code == 422


def test_the_cli_shows_and_sets_a_users_limits(app, user):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "limits", user.email, "--max-active-jobs", "3",
                                 "--max-stored-bytes", "default"])
    assert result.exit_code == 0, result.output
    assert "max_active_jobs: 3" in result.output
    with app.app_context(), database.connection_context():
        assert User.get_by_id(user.id).max_active_jobs == 3
    shown = runner.invoke(args=["users", "limits", user.email])
    assert "max_active_jobs: 3" in shown.output and "max_stored_bytes" in shown.output
