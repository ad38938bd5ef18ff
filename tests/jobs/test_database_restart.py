"""The fault drill's database case (issue 13): PostgreSQL crashes while a job trains. The app answers 503 (never
500) while it is down, and once it is back the job finishes by itself, exactly once. The server is a private one,
so that stopping it disturbs no other test."""
from __future__ import annotations

import pytest

from app.db import make_database, upgrade
from tests.support.jobs import job_state, status_events, wait_for_status
from tests.support.postgres import private_postgres
from tests.support.waiting import wait_until
from tests.support.workers import worker_pool

STEPS = {"max_steps": 60, "batch_size": 2, "gradient_accumulation_steps": 1, "max_seq_length": 64,
         "logging_steps": 1, "save_steps": 5, "eval_steps": 1000, "lora_r": 4, "lora_alpha": 8}


@pytest.fixture
def server():
    """A private PostgreSQL server with the Studio's schema."""
    with private_postgres() as server:
        db = make_database(server.url)
        upgrade(db)
        db.close_all()
        yield server


@pytest.fixture
def settings(settings, server):
    """The test's settings on the private server, with short leases and reconciler passes."""
    return settings.model_copy(update={"database_url": server.url, "job_lease_seconds": 4, "reconcile_interval": 5,
                                       "rate_limits_enabled": False})


def test_a_database_crash_mid_job_answers_503_and_the_job_recovers_by_itself(
        app, client, headers, dataset_id, settings, server, tmp_path):
    body = {"dataset_id": dataset_id, "base_model": "tiny-random-llama", "backend": "local", "hyperparameters": STEPS}
    job_id = client.post("/api/v1/jobs", headers=headers, json=body).get_json()["id"]
    with worker_pool(settings, tmp_path / "worker.log", pool_size=2):
        wait_until(lambda: job_state(client, headers, job_id)["progress"]["step"] >= 6, 180, "a checkpoint")
        server.stop()
        log = tmp_path / "worker.log"
        wait_until(lambda: "OperationalError" in log.read_text() or "InterfaceError" in log.read_text(), 60,
                   "the worker to meet the dead database")
        down = [client.get(f"/api/v1/jobs/{job_id}", headers=headers), client.get("/api/v1/health")]
        assert [response.status_code for response in down] == [503, 503]
        assert down[0].get_json()["error"]["code"] == "service_unavailable"
        server.start()
        final = wait_for_status(client, headers, job_id, {"succeeded", "failed", "cancelled"}, timeout=300)
    assert final["status"] == "succeeded", (tmp_path / "worker.log").read_text()[-4000:]
    assert status_events(app, job_id) == ["queued", "preparing", "running", "succeeded"]
    events = client.get(f"/api/v1/jobs/{job_id}/events", headers=headers).get_json()["data"]
    steps = [event["data"]["step"] for event in events if event["kind"] == "metric"]
    assert steps == list(range(1, STEPS["max_steps"] + 1))
