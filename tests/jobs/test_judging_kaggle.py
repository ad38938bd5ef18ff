"""Samples on the Kaggle backend: the kernel (run by the emulator) answers the prompts, the Studio serves them."""
from __future__ import annotations

import pytest

from tests.support.jobs import wait_for_status
from tests.support.judging import LEARNABLE, mean_similarity
from tests.support.kaggle import with_kaggle
from tests.support.workers import worker_pool


@pytest.fixture
def settings(s3_settings, tmp_path):
    """S3 storage, both backends, alice's Kaggle account, no rate limits."""
    return with_kaggle(s3_settings, tmp_path, kaggle_max_concurrent=1)


def test_kaggle_job_brings_back_samples_where_tuned_answers_match_the_references(
        client, headers, dataset_id, settings, kaggle_emulator, tmp_path):
    body = {"dataset_id": dataset_id, "base_model": "tiny-random-llama", "backend": "kaggle",
            "hyperparameters": LEARNABLE, "sample_count": 3}
    job = client.post("/api/v1/jobs", headers=headers, json=body).get_json()
    env = {**kaggle_emulator.client_env(), "KAGGLE_CONFIG_DIR": str(tmp_path / "kaggle-config")}
    with worker_pool(settings, tmp_path / "worker.log", extra_env=env):
        final = wait_for_status(client, headers, job["id"], {"succeeded", "failed"}, timeout=300)
    assert final["status"] == "succeeded", (tmp_path / "worker.log").read_text()[-4000:]
    samples = client.get(f"/api/v1/jobs/{job['id']}/samples", headers=headers).get_json()["data"]
    assert len(samples) == 3 and all(s["base"] != s["tuned"] for s in samples)
    assert mean_similarity(samples, "tuned") > 0.9 > 0.5 > mean_similarity(samples, "base")
    steps = [c["step"] for c in client.get(f"/api/v1/jobs/{job['id']}/checkpoints", headers=headers).get_json()["data"]]
    assert steps == [40, 50, 60]
