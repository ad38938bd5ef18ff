"""Exports through the API and a real worker: the merged model and Modelfile land among the artifacts."""
from __future__ import annotations

import pytest

from app.db import database
from app.extensions import get_redis, get_store
from app.queue import EXPORTS_QUEUE
from tests.support.factories import make_job
from tests.support.judging import sample, stored_samples
from tests.support.playground import job_with_adapter, playground_worker
from tests.support.waiting import wait_until


@pytest.fixture
def settings(settings):
    """No rate limits: the test polls the artifacts."""
    return settings.model_copy(update={"rate_limits_enabled": False})


def test_ollama_export_passes_its_self_check_and_lands_among_the_artifacts(app, client, headers, user, settings,
                                                                          tmp_path):
    with app.app_context(), database.connection_context():
        job = job_with_adapter(user, get_store(), tmp_path / "adapter")
        stored_samples(get_store(), job, [sample("Please greet the comet.", "Hello there, friend!", reference="Hi")])
    assert client.post(f"/api/v1/jobs/{job.id}/export", headers=headers, json={"format": "gguf"}).status_code == 422
    response = client.post(f"/api/v1/jobs/{job.id}/export", headers=headers, json={"format": "ollama"})
    assert response.status_code == 202 and response.get_json()["status"] == "queued"

    def export_events():
        events = client.get(f"/api/v1/jobs/{job.id}/events", headers=headers).get_json()["data"]
        return [e["message"] for e in events if "export" in e["message"]]

    # On the exports queue, which the playground's worker serves (the slim worker image has no training stack).
    with app.app_context():
        assert get_redis().llen(f"rq:queue:{EXPORTS_QUEUE}") == 1 and get_redis().llen("rq:queue:default") == 0
    with playground_worker(settings, tmp_path / "playground.log"):
        outcome = wait_until(export_events, 180, "the export to end")
    assert "export ollama passed its self-check" in outcome[0], outcome
    names = {a["name"] for a in client.get(f"/api/v1/jobs/{job.id}/artifacts", headers=headers).get_json()["data"]}
    assert {"export/ollama/model.safetensors", "export/ollama/tokenizer.json"} <= names
    modelfile = client.get(f"/api/v1/jobs/{job.id}/artifacts/export/ollama/Modelfile", headers=headers)
    assert 'PARAMETER stop "<|end|>"' in modelfile.get_data(as_text=True)


def test_a_preference_job_on_an_adapter_is_exported_and_one_on_full_weights_is_not(app, client, headers, user,
                                                                                   tmp_path):
    with app.app_context(), database.connection_context():
        dpo = job_with_adapter(user, get_store(), tmp_path / "adapter", method="dpo")
        full = make_job(user, status="succeeded", method="dpo", hyperparameters={"adapter": "full"})
    accepted = client.post(f"/api/v1/jobs/{dpo.id}/export", headers=headers, json={"format": "merged"})
    assert accepted.status_code == 202, accepted.get_json()
    refused = client.post(f"/api/v1/jobs/{full.id}/export", headers=headers, json={"format": "merged"})
    assert refused.status_code == 409 and refused.get_json()["error"]["details"] == {"method": "dpo"}
