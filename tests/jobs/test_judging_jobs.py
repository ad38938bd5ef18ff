"""Judging and reusing results end to end on the local backend: samples, checkpoints, the zip, continuing a job."""
from __future__ import annotations

import io

import pytest

from tests.support.data import as_jsonl, learnable_chats
from tests.support.jobs import wait_for_status
from tests.support.judging import LEARNABLE, mean_similarity, zip_digests
from tests.support.workers import worker_pool


@pytest.fixture
def settings(s3_settings):
    """S3 storage, no rate limits."""
    return s3_settings.model_copy(update={"rate_limits_enabled": False, "worker_pool_size": 1})


@pytest.fixture
def validation_id(client, headers):
    """A ready validation dataset of unseen learnable chats."""
    response = client.post("/api/v1/datasets", headers=headers, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(as_jsonl(learnable_chats(16, seed=1))), "valid.jsonl")})
    assert response.get_json()["status"] == "ready", response.get_json()
    return response.get_json()["id"]


def post_job(client, headers, dataset_id, **fields):
    """POST a local LoRA job on the tiny model; returns the response."""
    body = {"dataset_id": dataset_id, "base_model": "tiny-random-llama", "backend": "local", "method": "lora",
            "hyperparameters": LEARNABLE, **fields}
    return client.post("/api/v1/jobs", headers=headers, json=body)


def finished(client, headers, job_id, log) -> dict:
    """The job once it ended, which must be a success."""
    final = wait_for_status(client, headers, job_id, {"succeeded", "failed"}, timeout=300)
    assert final["status"] == "succeeded", (final, log.read_text()[-3000:])
    return final


def first_loss(client, headers, job_id) -> float:
    """The first training loss the job reported."""
    events = client.get(f"/api/v1/jobs/{job_id}/events", headers=headers).get_json()["data"]
    return [e["data"]["loss"] for e in events if e["kind"] == "metric" and "loss" in e["data"]][0]


def test_a_finished_job_has_samples_checkpoints_a_zip_and_can_be_continued(
        client, headers, dataset_id, validation_id, settings, tmp_path):
    first = post_job(client, headers, dataset_id, validation_dataset_id=validation_id, sample_count=4).get_json()
    assert first["run_options"]["sample_count"] == 4
    log = tmp_path / "worker.log"
    with worker_pool(settings, log):
        final = finished(client, headers, first["id"], log)
        assert 0.8 < final["metrics"]["eval_accuracy"] <= 1 and final["metrics"]["eval_perplexity"] > 1

        samples = client.get(f"/api/v1/jobs/{first['id']}/samples", headers=headers).get_json()["data"]
        assert len(samples) == 4 and all(s["base"] != s["tuned"] for s in samples)
        assert mean_similarity(samples, "tuned") > 0.9 > 0.5 > mean_similarity(samples, "base")

        checkpoints = client.get(f"/api/v1/jobs/{first['id']}/checkpoints", headers=headers).get_json()["data"]
        assert [c["step"] for c in checkpoints] == [40, 50, 60]
        assert all(c["metrics"]["valid_mean_token_accuracy"] > 0 for c in checkpoints)
        kept = client.get(checkpoints[1]["artifact"]["url"], headers=headers)
        assert "checkpoint_adapters/step-00000050/adapter_model.safetensors" in zip_digests(kept.get_data())

        listed = client.get(f"/api/v1/jobs/{first['id']}/artifacts", headers=headers).get_json()["data"]
        whole = client.get(f"/api/v1/jobs/{first['id']}/artifacts.zip", headers=headers)
        assert whole.status_code == 200 and whole.mimetype == "application/zip"
        assert zip_digests(whole.get_data()) == {a["name"]: a["sha256"] for a in listed}

        init_from = {"job_id": first["id"], "checkpoint_step": 50}
        bad = post_job(client, headers, dataset_id, init_from={**init_from, "checkpoint_step": 7})
        assert bad.status_code == 422 and "init_from.checkpoint_step" in bad.get_json()["error"]["details"]
        hyperparameters = {**LEARNABLE, "max_steps": 5, "logging_steps": 1}
        second = post_job(client, headers, dataset_id, init_from=init_from, hyperparameters=hyperparameters)
        assert second.status_code == 201, second.get_json()
        finished(client, headers, second.get_json()["id"], log)
    continued, fresh = first_loss(client, headers, second.get_json()["id"]), first_loss(client, headers, first["id"])
    assert continued < 0.3 * fresh
    assert continued == pytest.approx(checkpoints[1]["metrics"]["train_loss"], abs=0.3)
