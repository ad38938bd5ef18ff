"""Preference jobs (DPO, ORPO) through the API: the method and dataset must agree; DPO learns on the local backend,
from scratch or continuing a finished job's adapter (SFT -> DPO)."""
from __future__ import annotations

import io

import pytest

from app.db import database
from tests.support.data import as_jsonl, learnable_pairs
from tests.support.factories import make_artifact, make_job
from tests.support.jobs import wait_for_status
from tests.support.judging import LEARNABLE, mean_similarity
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


@pytest.mark.parametrize("source, hyperparameters, words", [
    ({"status": "queued"}, {}, "The job queued; only a succeeded job can be continued."),
    ({"base_model": "Qwen/Qwen2.5-0.5B-Instruct"}, {}, "The job trained Qwen/Qwen2.5-0.5B-Instruct: continue it on"),
    ({}, {"adapter": "full"}, "A full-weights run cannot start from an adapter"),
    ({"method": "dpo", "hyperparameters": {"adapter": "full"}}, {}, "that job trained every weight"),
])
def test_preference_job_from_a_job_it_cannot_continue_is_422_naming_init_from(client, headers, user, pairs_id,
                                                                              source, hyperparameters, words):
    with database.connection_context():
        earlier = make_job(user, **{"status": "succeeded", **source})
    response = post_job(client, headers, pairs_id, "dpo", hyperparameters={**PREFERENCE, **hyperparameters},
                        init_from={"job_id": earlier.id})
    assert response.status_code == 422
    details = response.get_json()["error"]["details"]
    assert set(details) == {"init_from.job_id"} and words in details["init_from.job_id"], details


@pytest.mark.parametrize("method", ["dpo", "orpo"])
def test_preference_job_continues_an_earlier_preference_jobs_adapter(client, headers, user, pairs_id, method):
    with database.connection_context():
        earlier = make_job(user, status="succeeded", method="dpo", hyperparameters={"adapter": "qlora"})
        make_artifact(earlier, "adapter/adapter_model.safetensors")
    response = post_job(client, headers, pairs_id, method, init_from={"job_id": earlier.id})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["run_options"]["init_from"] == {"job_id": earlier.id, "checkpoint_step": None,
                                                              "artifact": "adapter"}


def test_dpo_job_continues_a_finished_sft_job_and_starts_from_its_model(client, headers, dataset_id, pairs_id,
                                                                        settings, redis, tmp_path):
    sft = client.post("/api/v1/jobs", headers=headers, json={
        "dataset_id": dataset_id, "base_model": "tiny-random-llama", "backend": "local", "method": "lora",
        "hyperparameters": LEARNABLE, "sample_count": 0}).get_json()
    log = tmp_path / "worker.log"
    with worker_pool(settings, log, pool_size=1):
        assert wait_for_status(client, headers, sft["id"], {"succeeded", "failed"})["status"] == "succeeded", \
            log.read_text()[-3000:]
        held_out = upload_pairs(client, headers, learnable_pairs(16, seed=2), "held-out.jsonl")
        # An SFT adapter has large weights already: DPO moves it at a tenth of the rate a fresh adapter takes.
        response = post_job(client, headers, pairs_id, "dpo", init_from={"job_id": sft["id"]}, sample_count=4,
                            validation_dataset_id=held_out, hyperparameters={**PREFERENCE, "learning_rate": 5e-4})
        assert response.status_code == 201, response.get_json()
        dpo = wait_for_status(client, headers, response.get_json()["id"], {"succeeded", "failed"})
    assert dpo["status"] == "succeeded", log.read_text()[-3000:]
    events = client.get(f"/api/v1/jobs/{dpo['id']}/events?per_page=200", headers=headers).get_json()["data"]
    first = next(e["data"] for e in events if e["kind"] == "metric" and "reward_margin" in e["data"])
    # The reference is the SFT model, which the policy starts as: every margin 0. Against the bare base, the SFT
    # model's certainty about the right answers would have put the first loss far from ln 2.
    assert abs(first["loss"] - 0.6931) < 1e-3 and first["reward_margin"] == pytest.approx(0, abs=1e-4)
    samples = client.get(f"/api/v1/jobs/{dpo['id']}/samples", headers=headers).get_json()["data"]
    assert len(samples) == 4 and mean_similarity(samples, "tuned") > 0.9, "it answers as the SFT model learnt to"
    assert dpo["metrics"]["eval_reward_accuracy"] >= 0.9
