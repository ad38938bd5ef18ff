"""Personal Kaggle accounts: linked through the API (checked with Kaggle, encrypted at rest, never shown or logged),
and every user's jobs on their own account, two sessions per account at most, the rest waiting with their reason."""
from __future__ import annotations

import logging

import pytest

from app.db import database
from app.jobs.context import JobContext
from app.jobs.orchestrator import run_step
from app.models import Job, KaggleAccount
from app.secrets_at_rest import SecretBox
from tests.kaggle_emulator import KaggleEmulator
from tests.support.accounts import login
from tests.support.data import as_jsonl, learnable_chats
from tests.support.datasets import upload
from tests.support.jobs import job_state, wait_for_status
from tests.support.kaggle import point_client_at, with_kaggle
from tests.support.waiting import wait_until
from tests.support.workers import worker_pool

ACCOUNTS = {"alice": "alice-key-5f3c9a0d21e84b7a", "bob": "bob-key-8e1d2c3b4a5f6e7d"}
TINY = {"max_steps": 2, "batch_size": 2, "gradient_accumulation_steps": 1, "max_seq_length": 64,
        "logging_steps": 1, "save_steps": 100, "eval_steps": 100, "lora_r": 4, "lora_alpha": 8}
WAITING = "waiting for a free GPU session on your Kaggle account"


@pytest.fixture
def emulator(tmp_path, monkeypatch) -> KaggleEmulator:
    """An emulated Kaggle with two accounts, this process's client sent to it."""
    with KaggleEmulator(tmp_path / "kaggle", ACCOUNTS) as running:
        point_client_at(running, monkeypatch, tmp_path / "kaggle-config")
        yield running


@pytest.fixture
def settings(s3_settings, tmp_path):
    """S3 storage, both backends, no shared Kaggle account: every user brings their own."""
    return with_kaggle(s3_settings, tmp_path, kaggle_username="", kaggle_key="", kaggle_shared_account=False)


def bearer(make_token, owner) -> dict:
    """API headers of a user."""
    return {"Authorization": f"Bearer {make_token(owner)}"}


def link(client, headers, username: str):
    """PUT the account's user name and key."""
    return client.put("/api/v1/me/kaggle", headers=headers, json={"username": username, "key": ACCOUNTS[username]})


def raw_secrets(app) -> list[str]:
    """The secret column as the database holds it."""
    with app.app_context(), database.connection_context():
        return [row[0] for row in database.execute_sql('SELECT secret FROM kaggle_account').fetchall()]


def test_linking_checks_the_key_with_kaggle_and_stores_it_encrypted(app, client, user, make_token, emulator,
                                                                     settings, caplog):
    caplog.set_level(logging.DEBUG)
    headers = bearer(make_token, user)
    response = link(client, headers, "alice")
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"linked": True, "username": "alice", "kind": "key",
                                   "linked_at": response.get_json()["linked_at"], "shared_account_offered": False}
    assert emulator.calls("GetAcceleratorQuotaStatistics") == 1  # the one cheap call that checked it
    [stored] = raw_secrets(app)
    assert ACCOUNTS["alice"] not in stored
    assert SecretBox.from_settings(settings).decrypt(stored) == ACCOUNTS["alice"]
    shown = client.get("/api/v1/me/kaggle", headers=headers).get_data(as_text=True)
    assert "alice" in shown and ACCOUNTS["alice"] not in shown
    assert ACCOUNTS["alice"] not in caplog.text


def test_a_key_kaggle_refuses_is_a_422_naming_the_key_and_nothing_is_stored(app, client, user, make_token,
                                                                             emulator):
    response = client.put("/api/v1/me/kaggle", headers=bearer(make_token, user),
                          json={"username": "alice", "key": "wrong-key-000000"})
    assert response.status_code == 422
    assert "key" in response.get_json()["error"]["details"]
    assert raw_secrets(app) == []


def test_incomplete_credentials_name_each_missing_field(client, user, make_token, emulator):
    response = client.put("/api/v1/me/kaggle", headers=bearer(make_token, user), json={"username": "alice"})
    assert response.status_code == 422 and set(response.get_json()["error"]["details"]) == {"key"}
    assert emulator.calls("GetAcceleratorQuotaStatistics") == 0


def test_an_access_token_links_the_account_kaggle_says_it_belongs_to(app, client, user, make_token, emulator):
    emulator.add_token("bob-access-token-1234567890", "bob")
    response = client.put("/api/v1/me/kaggle", headers=bearer(make_token, user),
                          json={"token": "bob-access-token-1234567890"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["username"] == "bob" and response.get_json()["kind"] == "token"
    assert "bob-access-token" not in raw_secrets(app)[0]


def test_delete_unlinks_the_account(app, client, user, make_token, emulator):
    headers = bearer(make_token, user)
    link(client, headers, "bob")
    assert client.delete("/api/v1/me/kaggle", headers=headers).status_code == 204
    assert client.get("/api/v1/me/kaggle", headers=headers).get_json()["linked"] is False
    assert client.delete("/api/v1/me/kaggle", headers=headers).status_code == 404
    with app.app_context(), database.connection_context():
        assert KaggleAccount.select().count() == 0


def test_a_kaggle_job_without_an_account_or_a_shared_one_is_a_clear_422(client, user, make_token, emulator):
    headers = bearer(make_token, user)
    dataset = upload(client, headers, as_jsonl(learnable_chats(16)), "chats.jsonl").get_json()
    response = client.post("/api/v1/jobs", headers=headers, json={
        "dataset_id": dataset["id"], "base_model": "tiny-random-llama", "backend": "kaggle", "hyperparameters": TINY})
    assert response.status_code == 422
    assert "link your Kaggle account" in response.get_json()["error"]["details"]["backend"]


def test_the_settings_page_links_and_unlinks_without_showing_the_key(logged_in, emulator):
    page = logged_in.get("/settings/kaggle").get_data(as_text=True)
    token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    response = logged_in.post("/settings/kaggle", data={"username": "bob", "key": ACCOUNTS["bob"],
                                                        "csrf_token": token}, follow_redirects=True)
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "Linked: bob" in page and ACCOUNTS["bob"] not in page
    refused = logged_in.post("/settings/kaggle", data={"username": "bob", "key": "nope-0000000000",
                                                       "csrf_token": token})
    assert refused.status_code == 422 and "Kaggle refused it" in refused.get_data(as_text=True)
    logged_in.post("/settings/kaggle/unlink", data={"csrf_token": token})
    assert "Not linked" in logged_in.get("/settings/kaggle").get_data(as_text=True)


@pytest.mark.timeout(600)
def test_each_users_jobs_run_on_their_own_account_two_sessions_at_most(
        app, client, make_user, make_token, emulator, settings, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    first_user = make_user()
    first, second = bearer(make_token, first_user), bearer(make_token, make_user())
    assert link(client, first, "alice").status_code == 200 and link(client, second, "bob").status_code == 200
    emulator.hold_queue()  # pushed sessions stay queued on Kaggle, holding their account's slots
    jobs = [create_job(client, first, seed) for seed in range(3)] + [create_job(client, second, 0)]
    with worker_pool(settings, tmp_path / "worker.log", pool_size=3,
                     extra_env={**emulator.client_env(), "KAGGLE_CONFIG_DIR": str(tmp_path / "kaggle-config")}):
        wait_until(lambda: len(emulator.kernels_of("alice")) == 2 and len(emulator.kernels_of("bob")) == 1, 180,
                   "two sessions on alice's account and one on bob's")
        waiting = wait_until(lambda: next((state for job in jobs[:3] if WAITING in (
            (state := job_state(client, first, job["id"]))["waiting_reason"] or "")), None), 120, "a waiting job")
        assert waiting["status"] == "queued" and waiting["backend_account"] == "alice"
        browser = app.test_client()
        login(browser, first_user.email)
        assert WAITING in browser.get(f"/jobs/{waiting['id']}").get_data(as_text=True)  # the job page says why
        emulator.hold_queue(False)
        emulator.release()
        finals = [wait_for_status(client, headers, job["id"], {"succeeded", "failed"}, timeout=300)
                  for job, headers in zip(jobs, [first] * 3 + [second], strict=True)]
    log = (tmp_path / "worker.log").read_text()
    assert [final["status"] for final in finals] == ["succeeded"] * 4, log[-3000:]
    assert len(emulator.kernels_of("alice")) == 3 and len(emulator.kernels_of("bob")) == 1
    assert emulator.peak_running_of("alice") == 2 and emulator.peak_running_of("bob") == 1
    assert [final["backend_account"] for final in finals] == ["alice", "alice", "alice", "bob"]
    for key in ACCOUNTS.values():
        assert key not in log and key not in caplog.text


def create_job(client, headers, seed: int) -> dict:
    """Upload a dataset and POST a Kaggle job on the tiny model."""
    dataset = upload(client, headers, as_jsonl(learnable_chats(16)), "chats.jsonl").get_json()
    response = client.post("/api/v1/jobs", headers=headers, json={
        "dataset_id": dataset["id"], "base_model": "tiny-random-llama", "backend": "kaggle",
        "hyperparameters": {**TINY, "seed": seed}})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


QUOTA_HUNGRY = {"max_steps": 100_000, "batch_size": 4, "gradient_accumulation_steps": 4, "max_seq_length": 512}


def test_the_estimate_warns_when_the_job_needs_more_than_the_quota_left(client, user, make_token, emulator):
    headers = bearer(make_token, user)
    link(client, headers, "alice")
    emulator.set_quota(used_hours=29.9, limit_hours=30, account="alice")
    dataset = upload(client, headers, as_jsonl(learnable_chats(16)), "chats.jsonl").get_json()
    body = {"dataset_id": dataset["id"], "base_model": "qwen2.5-0.5b-instruct", "backend": "kaggle",
            "hyperparameters": QUOTA_HUNGRY}
    estimate = client.post("/api/v1/jobs/estimate", headers=headers, json=body).get_json()["gpu_estimate"]
    assert estimate["quota_left_hours"] == 0.1 and estimate["hours"] > 0.1 and estimate["exceeds_quota"]
    assert "your weekly quota has 0.1 h left" in estimate["warning"]
    small = {**body, "hyperparameters": {**QUOTA_HUNGRY, "max_steps": 10}}
    assert client.post("/api/v1/jobs/estimate", headers=headers, json=small).get_json()["gpu_estimate"][
        "exceeds_quota"] is False
    created = client.post("/api/v1/jobs", headers=headers, json=body)
    assert created.status_code == 201 and created.get_json()["gpu_estimate"]["exceeds_quota"]


def test_a_job_beyond_the_quota_left_waits_queued_saying_so(app, client, user, make_token, emulator):
    headers = bearer(make_token, user)
    link(client, headers, "alice")
    emulator.set_quota(used_hours=29.9, limit_hours=30, account="alice")
    dataset = upload(client, headers, as_jsonl(learnable_chats(16)), "chats.jsonl").get_json()
    job = client.post("/api/v1/jobs", headers=headers, json={
        "dataset_id": dataset["id"], "base_model": "qwen2.5-0.5b-instruct", "backend": "kaggle",
        "hyperparameters": QUOTA_HUNGRY}).get_json()
    with app.app_context(), database.connection_context():
        stage = Job.get_by_id(job["id"])
        assert run_step(JobContext.from_app(app), job["id"], "prepare", stage.rq_job_id) == "waiting for a slot"
    state = job_state(client, headers, job["id"])
    assert state["status"] == "queued" and emulator.datasets() == []
    assert "your weekly GPU quota has 0.1 h left; this job needs about" in state["waiting_reason"]


def test_admins_see_every_users_link_active_jobs_and_limits_never_the_key(app, client, make_user, make_token,
                                                                           emulator):
    member, admin = make_user(), make_user(is_admin=True)
    headers = bearer(make_token, member)
    link(client, headers, "alice")
    job = create_job(client, headers, 0)  # queued: no worker runs here
    admin_headers = bearer(make_token, admin)
    answer = client.get("/api/v1/admin/users", headers=admin_headers)
    listed = {entry["email"]: entry for entry in answer.get_json()["data"]}
    assert listed[member.email]["kaggle"] == {"linked": True, "username": "alice", "kind": "key"}
    assert listed[admin.email]["kaggle"]["linked"] is False
    assert [j["id"] for j in listed[member.email]["active_jobs"]] == [job["id"]]
    assert ACCOUNTS["alice"] not in answer.get_data(as_text=True)
    browser = app.test_client()
    login(browser, member.email)
    assert browser.get("/admin/users").status_code == 404  # not a page for members
    browser = app.test_client()
    login(browser, admin.email)
    page = browser.get("/admin/users").get_data(as_text=True)
    assert member.email in page and "alice" in page and ACCOUNTS["alice"] not in page and job["name"] in page
    token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    browser.post(f"/admin/users/{member.id}/limits", data={"csrf_token": token, "max_active_jobs": "7",
                                                            "max_stored_bytes": "", "max_uploads_per_day": ""})
    listed = {e["email"]: e for e in client.get("/api/v1/admin/users", headers=admin_headers).get_json()["data"]}
    assert listed[member.email]["limits"]["max_active_jobs"] == {"value": 7, "default": 5, "overridden": True}


def test_the_form_shows_the_gpu_time_and_warns_past_the_quota_left(logged_in, user, make_token, emulator):
    headers = bearer(make_token, user)
    link(logged_in, headers, "alice")
    emulator.set_quota(used_hours=29.9, limit_hours=30, account="alice")
    dataset = upload(logged_in, headers, as_jsonl(learnable_chats(16)), "chats.jsonl").get_json()
    query = {"dataset_id": dataset["id"], "backend": "kaggle", "base_model": "qwen2.5-0.5b-instruct",
             "method": "lora", "max_seq_length": 512, "batch_size": 4, "lora_r": 16, "gradient_checkpointing": "on",
             "gradient_accumulation_steps": 4}
    heavy = logged_in.get("/jobs/new/estimate", query_string={**query, "max_steps": 100_000}).get_data(as_text=True)
    assert "GPU time" in heavy and "your weekly quota has 0.1 h left" in heavy
    light = logged_in.get("/jobs/new/estimate", query_string={**query, "max_steps": 10}).get_data(as_text=True)
    assert "GPU time" in light and "your weekly quota has" not in light
