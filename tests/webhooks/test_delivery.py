"""Webhooks delivered by a real worker to a real HTTP server, verified with the official client's unwrap()."""
from __future__ import annotations

import io

import pytest
from openai import InvalidWebhookSignatureError, OpenAI

from tests.support.data import as_jsonl, learnable_chats
from tests.support.waiting import wait_until
from tests.support.webhooks import webhook_receiver
from tests.support.workers import worker_pool


@pytest.fixture
def settings(settings):
    """Loopback receivers allowed, retries a second apart."""
    return settings.model_copy(update={"webhooks_allow_private_addresses": True, "webhooks_retry_schedule": "1,1,1",
                                       "rate_limits_enabled": False})


@pytest.fixture
def headers(user, make_token):
    """The API headers of the user."""
    return {"Authorization": f"Bearer {make_token(user)}"}


def queued_job(client, headers) -> int:
    """A job on the tiny model, still queued (no worker runs yet)."""
    dataset = client.post("/api/v1/datasets", headers=headers, content_type="multipart/form-data",
                          data={"file": (io.BytesIO(as_jsonl(learnable_chats(16))), "chats.jsonl")}).get_json()
    job = client.post("/api/v1/jobs", headers=headers, json={"dataset_id": dataset["id"], "backend": "local",
                                                             "base_model": "tiny-random-llama"})
    assert job.status_code == 201, job.get_json()
    return job.get_json()["id"]


def test_a_receiver_failing_twice_gets_exactly_one_accepted_signed_delivery(app, client, headers, settings, tmp_path):
    with webhook_receiver([500, 503]) as receiver:
        endpoint = client.post("/api/v1/webhooks", headers=headers, json={
            "url": receiver.url, "events": ["fine_tuning.job.cancelled"]}).get_json()
        job_id = queued_job(client, headers)
        assert client.post(f"/api/v1/jobs/{job_id}/cancel", headers=headers).get_json()["status"] == "cancelled"
        log_url = f"/api/v1/webhooks/{endpoint['id']}/deliveries"
        with worker_pool(settings, tmp_path / "worker.log"):
            (done,) = wait_until(lambda: [d for d in client.get(log_url, headers=headers).get_json()["data"]
                                          if d["status"] == "succeeded"], 60, "the delivery to succeed")
            again = client.post(f"{log_url}/{done['id']}/redeliver", headers=headers)
            assert again.status_code == 202
            wait_until(lambda: len(receiver.accepted()) == 2, 60, "the redelivery")
    assert [r.status for r in receiver.received] == [500, 503, 200, 200]
    assert (done["attempts"], done["response_status"]) == (3, 200) and done["latency_ms"] is not None
    unwrap = OpenAI(api_key="unused", base_url="http://127.0.0.1:9").webhooks.unwrap
    events = [unwrap(r.body, r.headers, secret=endpoint["secret"]) for r in receiver.received]
    assert {event.id for event in events} == {done["event_id"]}  # one message, however often it was sent
    assert {r.headers["webhook-id"] for r in receiver.received} == {done["event_id"]}
    assert events[0].type == "fine_tuning.job.cancelled" and events[0].data.id == f"ftjob-{job_id}"
    with pytest.raises(InvalidWebhookSignatureError):
        unwrap(receiver.received[0].body, receiver.received[0].headers, secret="whsec_" + "A" * 43 + "=")
