"""Preference jobs (DPO, ORPO) through the API: the method and dataset must agree; DPO learns on the local backend."""
from __future__ import annotations

import io

import pytest

from tests.support.data import as_jsonl, learnable_pairs
from tests.support.jobs import wait_for_status
from tests.support.workers import worker_pool

# Learnable in ten steps: the chosen answer depends on the prompt's verb; validation pairs are drawn apart.
PREFERENCE = {"max_steps": 10, "batch_size": 8, "gradient_accumulation_steps": 1, "max_seq_length": 64,
              "logging_steps": 1, "eval_steps": 5, "save_steps": 100, "lora_r": 4, "lora_alpha": 8,
              "learning_rate": 0.005, "beta": 0.5, "warmup_ratio": 0.1, "seed": 3}


@pytest.fixture
def settings(s3_settings):
    """S3 storage, no rate limits."""
    return s3_settings.model_copy(update={"rate_limits_enabled": False})


def upload_pairs(client, headers, records: list[dict], name: str) -> int:
    """A ready preference dataset of the user; its id."""
    response = client.post("/api/v1/datasets", headers=headers, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(as_jsonl(records)), name)})
    body = response.get_json()
    assert body["status"] == "ready" and body["format"] == "preference", body
    return body["id"]


@pytest.fixture
def pairs_id(client, headers) -> int:
    """A ready preference dataset of the user."""
    return upload_pairs(client, headers, learnable_pairs(64, seed=1), "pairs.jsonl")


def post_job(client, headers, dataset_id, method: str, **extra):
    """POST a local job on the tiny model."""
    body = {"dataset_id": dataset_id, "base_model": "tiny-random-llama", "backend": "local", "method": method,
            "hyperparameters": PREFERENCE, **extra}
    return client.post("/api/v1/jobs", headers=headers, json=body)


@pytest.mark.parametrize("method", ["dpo", "orpo"])
def test_preference_method_on_an_sft_dataset_is_422_naming_the_dataset(client, headers, dataset_id, method):
    response = post_job(client, headers, dataset_id, method)
    assert response.status_code == 422
    details = response.get_json()["error"]["details"]
    assert set(details) == {"dataset_id"} and "preference pairs" in details["dataset_id"]


def test_sft_method_on_a_preference_dataset_is_422_naming_the_dataset(client, headers, pairs_id, dataset_id):
    response = post_job(client, headers, pairs_id, "lora")
    assert response.status_code == 422 and "use method dpo or orpo" in response.get_json()["error"]["details"][
        "dataset_id"]
    response = post_job(client, headers, pairs_id, "dpo", validation_dataset_id=dataset_id)
    assert set(response.get_json()["error"]["details"]) == {"validation_dataset_id"}


@pytest.mark.parametrize("name, value, words", [
    ("loss_type", "hinge", "one of sigmoid, ipo"),
    ("label_smoothing", 0.5, "a number in [0, 0.5)"),
    ("adapter", "prefix", "one of lora, qlora, full"),
    ("packing", True, "not available for dpo and orpo"),
])
def test_bad_preference_hyperparameters_are_422_naming_them(client, headers, pairs_id, name, value, words):
    response = post_job(client, headers, pairs_id, "dpo", hyperparameters={**PREFERENCE, name: value})
    assert response.status_code == 422
    assert words in response.get_json()["error"]["details"][f"hyperparameters.{name}"]


def test_dpo_job_on_the_local_backend_learns_to_prefer_the_right_answers(app, client, headers, pairs_id, settings,
                                                                         redis, tmp_path):
    held_out = upload_pairs(client, headers, learnable_pairs(16, seed=2), "held-out.jsonl")
    response = post_job(client, headers, pairs_id, "dpo", validation_dataset_id=held_out)
    assert response.status_code == 201, response.get_json()
    job = response.get_json()
    with worker_pool(settings, tmp_path / "worker.log", pool_size=1):
        final = wait_for_status(client, headers, job["id"], {"succeeded", "failed"})
    assert final["status"] == "succeeded", (tmp_path / "worker.log").read_text()[-3000:]
    events = client.get(f"/api/v1/jobs/{job['id']}/events?per_page=200", headers=headers).get_json()["data"]
    steps = [e["data"] for e in events if e["kind"] == "metric" and "reward_accuracy" in e["data"]]
    evals = [e["data"] for e in events if e["kind"] == "metric" and "eval_reward_accuracy" in e["data"]]
    assert [point["step"] for point in steps] == list(range(1, 11))
    assert steps[0]["reward_accuracy"] == 0 and abs(steps[0]["loss"] - 0.6931) < 1e-3, "a fresh adapter: ln 2"
    assert {"rewards_chosen", "rewards_rejected", "reward_margin"} <= set(steps[0])
    assert [point["step"] for point in evals] == [5, 10]
    assert evals[-1]["eval_reward_accuracy"] >= 0.9 and evals[-1]["eval_reward_margin"] > 0.5
    assert final["metrics"]["eval_reward_accuracy"] == evals[-1]["eval_reward_accuracy"]
    names = {a["name"] for a in client.get(f"/api/v1/jobs/{job['id']}/artifacts", headers=headers).get_json()["data"]}
    assert "adapter/adapter_model.safetensors" in names
