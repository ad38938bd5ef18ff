"""Pause and resume through /v1 on the local backend: the run checkpoints and stops, then continues from there."""
from __future__ import annotations

import io

import pytest

from app.db import database
from app.models import Job
from tests.support.data import as_jsonl, learnable_chats
from tests.support.jobs import job_state
from tests.support.waiting import wait_until
from tests.support.workers import worker_pool

LONG = {"max_steps": 100_000, "batch_size": 4, "gradient_accumulation_steps": 1, "max_seq_length": 64,
        "logging_steps": 1, "eval_steps": 100_000, "save_steps": 2, "lora_r": 4, "lora_alpha": 8}


@pytest.fixture
def settings(settings):
    """Short reconciler passes (a paused job must stay paused through them), no rate limits."""
    return settings.model_copy(update={"reconcile_interval": 5, "rate_limits_enabled": False,
                                       "worker_pool_size": 2})


@pytest.fixture
def headers(user, make_token):
    """The API headers of the user."""
    return {"Authorization": f"Bearer {make_token(user)}"}


def long_job(client, headers) -> int:
    """A local job on the tiny model that would train for ever."""
    dataset = client.post("/api/v1/datasets", headers=headers, content_type="multipart/form-data",
                          data={"file": (io.BytesIO(as_jsonl(learnable_chats(32))), "chats.jsonl")}).get_json()
    job = client.post("/api/v1/jobs", headers=headers, json={
        "dataset_id": dataset["id"], "base_model": "tiny-random-llama", "backend": "local", "hyperparameters": LONG})
    return job.get_json()["id"]


def test_a_paused_local_job_stops_training_and_resumes_from_its_checkpoint(app, client, headers, settings,
                                                                           tmp_path):
    job_id = long_job(client, headers)
    v1 = f"/v1/fine_tuning/jobs/ftjob-{job_id}"
    with worker_pool(settings, tmp_path / "worker.log", pool_size=2):
        wait_until(lambda: job_state(client, headers, job_id)["progress"]["step"] >= 3, 120, "training to start")
        paused = client.post(f"{v1}/pause", headers=headers)
        assert paused.status_code == 200 and paused.get_json()["status"] == "paused", paused.get_json()
        wait_until(lambda: any("paused: checkpointed" in e["message"] for e in client.get(
            f"{v1}/events", headers=headers).get_json()["data"]), 60, "the run to stop")
        stopped_at = job_state(client, headers, job_id)["progress"]["step"]
        with app.app_context(), database.connection_context():
            assert Job.get_by_id(job_id).lease_owner is None  # nothing trains it now
        assert client.post(f"{v1}/pause", headers=headers).status_code == 200  # asking again changes nothing
        resumed = client.post(f"{v1}/resume", headers=headers)
        assert resumed.status_code == 200 and resumed.get_json()["status"] == "running"
        wait_until(lambda: job_state(client, headers, job_id)["progress"]["step"] > stopped_at + 1, 120,
                   "training to continue")
        assert client.post(f"{v1}/resume", headers=headers).status_code == 400  # not paused any more
        cancelled = client.post(f"{v1}/cancel", headers=headers).get_json()
        wait_until(lambda: client.get(v1, headers=headers).get_json()["status"] == "cancelled", 60, "the cancel")
    assert cancelled["id"] == f"ftjob-{job_id}"
    events = client.get(f"/api/v1/jobs/{job_id}/events", headers=headers).get_json()["data"]
    starts = [e["data"].get("resumed_from_step") for e in events if (e["data"] or {}).get("type") == "start"]
    # The second run began from the checkpoint the pause saved, not from the start.
    assert len(starts) == 2 and starts[0] is None and 2 <= starts[1] <= stopped_at, starts
