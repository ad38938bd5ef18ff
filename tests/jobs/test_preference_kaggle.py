"""A DPO job on the Kaggle backend: real workers, the real kaggle client, the emulator running the kernel."""
from __future__ import annotations

import io

import pytest

from tests.support.data import as_jsonl, learnable_pairs
from tests.support.jobs import wait_for_status
from tests.support.kaggle import with_kaggle
from tests.support.workers import worker_pool

PREFERENCE = {"max_steps": 10, "batch_size": 8, "gradient_accumulation_steps": 1, "max_seq_length": 64,
              "logging_steps": 1, "eval_steps": 10, "save_steps": 5, "lora_r": 4, "lora_alpha": 8,
              "learning_rate": 0.005, "beta": 0.5, "warmup_ratio": 0.1, "seed": 3}


@pytest.fixture
def settings(s3_settings, tmp_path):
    """S3 storage, both backends, alice's Kaggle account, no rate limits."""
    return with_kaggle(s3_settings, tmp_path, kaggle_max_concurrent=1)


def upload_pairs(client, headers, records: list[dict], name: str) -> int:
    """A ready preference dataset of the user; its id."""
    response = client.post("/api/v1/datasets", headers=headers, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(as_jsonl(records)), name)})
    assert response.get_json()["format"] == "preference", response.get_json()
    return response.get_json()["id"]


def test_dpo_job_on_the_kaggle_emulator_learns_to_prefer_the_right_answers(
        client, headers, settings, kaggle_emulator, tmp_path):
    body = {"dataset_id": upload_pairs(client, headers, learnable_pairs(64, seed=1), "pairs.jsonl"),
            "validation_dataset_id": upload_pairs(client, headers, learnable_pairs(16, seed=2), "held-out.jsonl"),
            "base_model": "tiny-random-llama", "backend": "kaggle", "method": "dpo", "hyperparameters": PREFERENCE}
    response = client.post("/api/v1/jobs", headers=headers, json=body)
    assert response.status_code == 201, response.get_json()
    job = response.get_json()
    env = {**kaggle_emulator.client_env(), "KAGGLE_CONFIG_DIR": str(tmp_path / "kaggle-config")}
    with worker_pool(settings, tmp_path / "worker.log", pool_size=2, extra_env=env):
        final = wait_for_status(client, headers, job["id"], {"succeeded", "failed"}, timeout=300)
    assert final["status"] == "succeeded", (tmp_path / "worker.log").read_text()[-4000:]
    events = client.get(f"/api/v1/jobs/{job['id']}/events?per_page=200", headers=headers).get_json()["data"]
    margins = [e["data"]["reward_margin"] for e in events if e["kind"] == "metric" and "reward_margin" in e["data"]]
    assert len(margins) == 10 and margins[0] == 0
    assert final["metrics"]["eval_reward_accuracy"] >= 0.9, final["metrics"]
    names = {a["name"] for a in client.get(f"/api/v1/jobs/{job['id']}/artifacts", headers=headers).get_json()["data"]}
    assert "adapter/adapter_model.safetensors" in names
