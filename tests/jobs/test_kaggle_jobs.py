"""Jobs on the Kaggle backend, end to end: real workers, the real kaggle client, the emulator running kernels."""
from __future__ import annotations

import pytest

from app.db import database
from app.jobs.backends.kaggle.backend import Patience
from app.models import Job, JobEvent
from tests.support.jobs import job_state, status_events, wait_for_status
from tests.support.kaggle import with_kaggle
from tests.support.processes import kill_tree
from tests.support.waiting import wait_until
from tests.support.workers import worker_pool

TEST_ATTEMPTS_BEYOND_CLIENT = Patience().attempts + 1
TINY = {"max_steps": 4, "batch_size": 2, "gradient_accumulation_steps": 1, "max_seq_length": 64,
        "logging_steps": 1, "save_steps": 2, "eval_steps": 100, "lora_r": 4, "lora_alpha": 8}


@pytest.fixture
def settings(s3_settings, tmp_path):
    """S3 storage, both backends, alice's Kaggle account, two Kaggle jobs at most, no rate limits."""
    return with_kaggle(s3_settings, tmp_path, kaggle_max_concurrent=2)


@pytest.fixture
def emulator_env(kaggle_emulator, tmp_path) -> dict:
    """The environment that sends the workers' kaggle client to the emulator."""
    return {**kaggle_emulator.client_env(), "KAGGLE_CONFIG_DIR": str(tmp_path / "kaggle-config")}


def create_kaggle_job(client, headers, dataset_id, **hyperparameters) -> dict:
    """POST a Kaggle job on the tiny model."""
    body = {"dataset_id": dataset_id, "base_model": "tiny-random-llama", "backend": "kaggle",
            "hyperparameters": {**TINY, **hyperparameters}}
    response = client.post("/api/v1/jobs", headers=headers, json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def kernel_of(app, job_id: int) -> str:
    """The kernel slug the job pushed."""
    with app.app_context(), database.connection_context():
        return Job.get_by_id(job_id).backend_ref["kernel"]


def test_kaggle_job_runs_on_the_emulator_to_success_with_progress_and_an_adapter(
        app, client, headers, dataset_id, settings, kaggle_emulator, emulator_env, tmp_path):
    job = create_kaggle_job(client, headers, dataset_id)
    with worker_pool(settings, tmp_path / "worker.log", pool_size=2, extra_env=emulator_env):
        final = wait_for_status(client, headers, job["id"], {"succeeded", "failed"}, timeout=240)
    assert final["status"] == "succeeded", (tmp_path / "worker.log").read_text()[-4000:]
    assert status_events(app, job["id"]) == ["queued", "preparing", "running", "succeeded"]
    assert kaggle_emulator.pushes(kernel_of(app, job["id"]).split("/")[-1]) == 1
    events = client.get(f"/api/v1/jobs/{job['id']}/events", headers=headers).get_json()["data"]
    assert [e["data"]["step"] for e in events if e["kind"] == "metric"] == [1, 2, 3, 4]
    names = {a["name"] for a in client.get(f"/api/v1/jobs/{job['id']}/artifacts", headers=headers).get_json()["data"]}
    assert {"adapter/adapter_model.safetensors", "metrics.json"} <= names


def test_kernel_that_errors_fails_the_job_with_the_programs_message(
        app, client, headers, dataset_id, settings, emulator_env, tmp_path):
    job = create_kaggle_job(client, headers, dataset_id, target_modules=["no_such_module"])
    with worker_pool(settings, tmp_path / "worker.log", pool_size=2, extra_env=emulator_env):
        final = wait_for_status(client, headers, job["id"], {"succeeded", "failed"}, timeout=240)
    assert final["status"] == "failed"
    assert "no_such_module" in final["error"], final["error"]


def test_kaggle_server_errors_are_retried_until_the_job_succeeds(
        app, client, headers, dataset_id, settings, kaggle_emulator, emulator_env, tmp_path):
    # One more failure than the backend's own attempts, so the orchestrator's backoff is exercised too.
    for method in ("SaveKernel", "GetKernelSessionStatus"):
        kaggle_emulator.fail(method, status=503, times=TEST_ATTEMPTS_BEYOND_CLIENT)
    job = create_kaggle_job(client, headers, dataset_id)
    with worker_pool(settings, tmp_path / "worker.log", pool_size=2, extra_env=emulator_env):
        final = wait_for_status(client, headers, job["id"], {"succeeded", "failed"}, timeout=300)
    assert final["status"] == "succeeded", final
    assert kaggle_emulator.pushes(kernel_of(app, job["id"]).split("/")[-1]) == 1


def test_at_most_the_configured_number_of_kaggle_jobs_run_at_once(
        app, client, headers, dataset_id, settings, kaggle_emulator, emulator_env, tmp_path):
    jobs = [create_kaggle_job(client, headers, dataset_id, seed=index) for index in range(5)]
    with worker_pool(settings, tmp_path / "worker.log", pool_size=3, extra_env=emulator_env):
        for job in jobs:
            wait_for_status(client, headers, job["id"], {"succeeded", "failed"}, timeout=400)
    assert {job_state(client, headers, job["id"])["status"] for job in jobs} == {"succeeded"}
    # A slot is a Kaggle session: held from the push until Kaggle says it ended (a job collecting its outputs
    # has given its slot back already), so the sessions Kaggle ran at once are what the cap bounds.
    assert kaggle_emulator.peak_running == 2
    with app.app_context(), database.connection_context():
        waited = JobEvent.select().where(JobEvent.message.startswith("waiting for a free GPU session")).count()
    assert waited >= 1, "some jobs had to wait for a slot"


def test_cancel_of_a_submitted_kaggle_job_tells_the_session_runs_on(
        app, client, headers, dataset_id, settings, kaggle_emulator, emulator_env, tmp_path):
    kaggle_emulator.hold_queue()
    job = create_kaggle_job(client, headers, dataset_id)
    with worker_pool(settings, tmp_path / "worker.log", pool_size=2, extra_env=emulator_env):
        wait_until(lambda: job_state(client, headers, job["id"])["status"] == "running", 120, "the kernel push")
        assert client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=headers).status_code == 202
        final = wait_for_status(client, headers, job["id"], {"cancelled", "failed", "succeeded"}, timeout=60)
    assert final["status"] == "cancelled"
    with app.app_context(), database.connection_context():
        messages = [e.message for e in JobEvent.select().where(JobEvent.job == job["id"])]
    assert any("runs on" in message or "until it ends" in message for message in messages), messages


def test_cancel_while_preparing_stops_before_any_kernel_is_pushed(
        app, client, headers, dataset_id, settings, kaggle_emulator, emulator_env, tmp_path):
    kaggle_emulator.hold_datasets()
    job = create_kaggle_job(client, headers, dataset_id)
    with worker_pool(settings, tmp_path / "worker.log", pool_size=2, extra_env=emulator_env):
        wait_until(lambda: job_state(client, headers, job["id"])["status"] == "preparing", 60, "preparing")
        client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=headers)
        kaggle_emulator.release_datasets()
        final = wait_for_status(client, headers, job["id"], {"cancelled", "failed", "succeeded"}, timeout=120)
    assert final["status"] == "cancelled"
    assert kaggle_emulator.kernels() == []


def test_backends_report_the_kaggle_quota_once_per_cache_period(client, headers, kaggle_client_env, settings):
    kaggle_client_env.set_quota(used_hours=3.5, limit_hours=30)
    answers = [client.get("/api/v1/backends", headers=headers).get_json()["data"] for _ in range(3)]
    kaggle = next(backend for backend in answers[0] if backend["name"] == "kaggle")
    assert kaggle["configured"] and kaggle["max_concurrent"] == 2 and kaggle["running"] == 0
    assert kaggle["quota"]["used_hours"] == 3.5 and kaggle["quota"]["limit_hours"] == 30
    assert answers[0] == answers[2]
    assert kaggle_client_env.calls("GetAcceleratorQuotaStatistics") == 1


def test_an_unreachable_kaggle_makes_the_quota_unknown_not_an_error(client, headers, kaggle_client_env):
    kaggle_client_env.fail("GetAcceleratorQuotaStatistics", status=503, times=10)
    response = client.get("/api/v1/backends", headers=headers)
    kaggle = next(backend for backend in response.get_json()["data"] if backend["name"] == "kaggle")
    assert response.status_code == 200 and kaggle["quota"]["unknown"] is True


def test_worker_killed_while_a_kernel_runs_is_recovered_with_one_push(
        app, client, headers, dataset_id, settings, kaggle_emulator, emulator_env, tmp_path):
    kaggle_emulator.hold_queue()
    job = create_kaggle_job(client, headers, dataset_id)
    with worker_pool(settings, tmp_path / "worker-1.log", pool_size=2, extra_env=emulator_env) as pool:
        wait_until(lambda: job_state(client, headers, job["id"])["stage"] == "poll", 120, "the first poll")
        kill_tree(pool.pid)
    kaggle_emulator.release()
    with worker_pool(settings, tmp_path / "worker-2.log", pool_size=2, extra_env=emulator_env):
        final = wait_for_status(client, headers, job["id"], {"succeeded", "failed"}, timeout=240)
    assert final["status"] == "succeeded", (tmp_path / "worker-2.log").read_text()[-3000:]
    assert status_events(app, job["id"]).count("succeeded") == 1
    assert kaggle_emulator.pushes(kernel_of(app, job["id"]).split("/")[-1]) == 1


def test_a_redis_flush_while_a_kernel_runs_is_recovered_by_the_reconciler(
        app, client, headers, dataset_id, settings, kaggle_emulator, emulator_env, redis, tmp_path):
    kaggle_emulator.hold_queue()
    job = create_kaggle_job(client, headers, dataset_id)
    with worker_pool(settings, tmp_path / "worker.log", pool_size=2, extra_env=emulator_env):
        wait_until(lambda: job_state(client, headers, job["id"])["stage"] == "poll", 120, "the first poll")
        redis.flushdb()  # FLUSHALL for this test process: its Redis database is its own
        kaggle_emulator.release()
        final = wait_for_status(client, headers, job["id"], {"succeeded", "failed"}, timeout=240)
    assert final["status"] == "succeeded", (tmp_path / "worker.log").read_text()[-3000:]
    with app.app_context(), database.connection_context():
        messages = [e.message for e in JobEvent.select().where(JobEvent.job == job["id"])]
    assert any(message.startswith("recovered") for message in messages)
