"""Webhook endpoints through the API and the settings page: secrets shown once and kept encrypted, private
addresses refused at creation and again at delivery, endpoints disabled after failures in a row."""
from __future__ import annotations

import datetime
import io

import pytest
from rq import Queue

from app.db import database
from app.jobs import reconciler
from app.jobs.context import JobContext
from app.models import WebhookDelivery, WebhookEndpoint
from app.queue import DEFAULT_QUEUE
from app.webhooks import addresses, delivery, endpoints, keys, outbox
from tests.support.accounts import csrf_token_from, login
from tests.support.data import as_jsonl, learnable_chats
from tests.support.webhooks import webhook_receiver

EVENTS = ["fine_tuning.job.succeeded", "dataset.ready"]


@pytest.fixture
def headers(user, make_token):
    """The API headers of the user."""
    return {"Authorization": f"Bearer {make_token(user)}"}


@pytest.fixture
def open_app(make_app):
    """An app that may send to loopback receivers (WEBHOOKS_ALLOW_PRIVATE_ADDRESSES), failing fast."""
    return make_app(webhooks_allow_private_addresses=True, webhooks_retry_schedule="0",
                    webhooks_disable_after_failures=2)


def test_endpoint_is_created_with_its_secret_once_and_kept_encrypted(app, client, headers):
    created = client.post("/api/v1/webhooks", headers=headers, json={"url": "https://93.184.215.14/hook",
                                                                    "events": EVENTS})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["secret"].startswith("whsec_") and body["events"] == EVENTS
    listed = client.get("/api/v1/webhooks", headers=headers).get_json()["data"]
    assert [e["id"] for e in listed] == [body["id"]] and "secret" not in listed[0]
    with app.app_context(), database.connection_context():
        stored = WebhookEndpoint.get_by_id(body["id"]).secret_encrypted
        assert body["secret"] not in stored and keys.decrypt(app.extensions["settings"], stored) == body["secret"]
    rotated = client.post(f"/api/v1/webhooks/{body['id']}/rotate", headers=headers).get_json()["secret"]
    assert rotated.startswith("whsec_") and rotated != body["secret"]
    patched = client.patch(f"/api/v1/webhooks/{body['id']}", headers=headers, json={"events": ["dataset.invalid"]})
    assert patched.get_json()["events"] == ["dataset.invalid"]
    assert client.delete(f"/api/v1/webhooks/{body['id']}", headers=headers).status_code == 204
    assert client.get("/api/v1/webhooks", headers=headers).get_json()["data"] == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://localhost/hook", "http://169.254.169.254/",
                                 "http://[::1]/hook", "http://10.1.2.3/hook", "ftp://example.com/hook"])
def test_private_or_odd_addresses_are_refused_at_creation(client, headers, url):
    response = client.post("/api/v1/webhooks", headers=headers, json={"url": url, "events": EVENTS})
    assert response.status_code == 422 and "url" in response.get_json()["error"]["details"], response.get_json()


def test_unknown_events_are_named(client, headers):
    response = client.post("/api/v1/webhooks", headers=headers, json={"url": "https://93.184.215.14/h",
                                                                     "events": ["job.exploded"]})
    assert response.status_code == 422 and "job.exploded" in response.get_json()["error"]["message"]


def test_an_address_gone_private_is_refused_at_delivery(open_app, make_user, make_app):
    """Saved while allowed (as a DNS answer can change after creation): the delivery checks it again."""
    owner = make_user()
    strict = make_app(webhooks_retry_schedule="")
    with webhook_receiver() as receiver, open_app.app_context(), database.connection_context():
        endpoint, _ = _endpoint(open_app, owner, receiver.url)
        (delivery_id,) = outbox.publish(owner.id, "dataset.ready", {"id": "file-1"})
        with strict.app_context():
            assert delivery.deliver(delivery_id, strict.extensions["settings"]) == "failed"
        row = WebhookDelivery.get_by_id(delivery_id)
    assert receiver.received == [] and "private, loopback or link-local" in row.response_excerpt


def test_failures_in_a_row_disable_the_endpoint_and_the_page_says_so(open_app, make_user):
    owner = make_user()
    settings = open_app.extensions["settings"]
    with webhook_receiver([500, 500, 500]) as receiver, open_app.app_context(), database.connection_context():
        endpoint, _ = _endpoint(open_app, owner, receiver.url)
        (delivery_id,) = outbox.publish(owner.id, "dataset.ready", {"id": "file-1"})
        outcomes = [delivery.deliver(delivery_id, settings), delivery.deliver(delivery_id, settings)]
        endpoint = WebhookEndpoint.get_by_id(endpoint.id)
    assert outcomes == ["retrying", "failed"] and len(receiver.received) == 2
    assert not endpoint.enabled and "2 failed deliveries in a row" in endpoint.disabled_reason
    client = open_app.test_client()
    login(client, owner.email)
    page = client.get("/settings/webhooks").get_data(as_text=True)
    assert "disabled after 2 failed deliveries" in page
    log = client.get(f"/settings/webhooks/{endpoint.id}").get_data(as_text=True)
    assert "dataset.ready" in log and "500" in log
    enabled = client.post(f"/settings/webhooks/{endpoint.id}/enable", data={"csrf_token": csrf_token_from(page)})
    assert enabled.status_code == 302
    with open_app.app_context(), database.connection_context():
        endpoint = WebhookEndpoint.get_by_id(endpoint.id)
    assert endpoint.enabled and endpoint.consecutive_failures == 0 and endpoint.disabled_reason is None


def test_the_settings_page_adds_an_endpoint_and_shows_its_secret_once(app, client, user):
    login(client, user.email)
    token = csrf_token_from(client.get("/settings/webhooks").get_data(as_text=True))
    page = client.post("/settings/webhooks", data={"url": "https://93.184.215.14/hook", "events": EVENTS,
                                                   "csrf_token": token}).get_data(as_text=True)
    assert "whsec_" in page and "https://93.184.215.14/hook" in page
    assert "whsec_" not in client.get("/settings/webhooks").get_data(as_text=True)
    refused = client.post("/settings/webhooks", data={"url": "http://127.0.0.1/x", "events": EVENTS,
                                                      "csrf_token": token})
    assert refused.status_code == 422 and "private, loopback or link-local" in refused.get_data(as_text=True)
    in_spanish = client.post("/settings/webhooks", data={"url": "http://127.0.0.1/x", "events": EVENTS,
                                                         "csrf_token": token}, headers={"Accept-Language": "es"})
    assert ("Se rechaza la URL del webhook: el servidor se resuelve a 127.0.0.1, una dirección privada"
            in in_spanish.get_data(as_text=True))


def test_a_ready_dataset_records_one_delivery_per_subscribed_endpoint(open_app, make_user, make_token):
    owner = make_user()
    headers = {"Authorization": f"Bearer {make_token(owner)}"}
    client = open_app.test_client()
    with open_app.app_context(), database.connection_context():
        _endpoint(open_app, owner, "http://127.0.0.1:9/a", ["dataset.ready"])
        _endpoint(open_app, owner, "http://127.0.0.1:9/b", ["dataset.invalid"])
    uploaded = client.post("/api/v1/datasets", headers=headers, content_type="multipart/form-data",
                data={"file": (io.BytesIO(as_jsonl(learnable_chats(12))), "chats.jsonl")})
    assert uploaded.get_json()["status"] == "ready", uploaded.get_json()
    with open_app.app_context(), database.connection_context():
        rows = [(row.event_type, row.endpoint.url) for row in WebhookDelivery.select()]
    assert rows == [("dataset.ready", "http://127.0.0.1:9/a")]


def _endpoint(app, owner, url, events=None):
    """An endpoint of owner's made through the service (inside an app and connection context)."""
    return endpoints.create_endpoint(owner, url, events or ["dataset.ready"], app.extensions["settings"])


def test_plain_http_deliveries_go_to_the_address_that_was_checked():
    assert addresses.pinned_url("http://hooks.example:8080/in?x=1", ["93.184.215.14"]) == (
        "http://93.184.215.14:8080/in?x=1", {"host": "hooks.example:8080"})
    assert addresses.pinned_url("http://hooks.example/in", ["2606:2800:21f:cb07:6820:80da:af6b:8b2c"])[0] == (
        "http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/in")
    assert addresses.pinned_url("https://hooks.example/in", ["93.184.215.14"]) == ("https://hooks.example/in", {})


def test_a_delivery_recorded_without_redis_at_hand_is_enqueued_by_the_reconciler(open_app, make_user, redis):
    owner = make_user()
    with open_app.app_context(), database.connection_context():
        _endpoint(open_app, owner, "http://127.0.0.1:9/a")
        ctx = JobContext.from_app(open_app)
        (delivery_id,) = outbox.publish(owner.id, "dataset.ready", {"id": "file-1"})
        queued = Queue(DEFAULT_QUEUE, connection=redis).get_job_ids()
        assert len(queued) == 1  # enqueued at once, the app's Redis being at hand
        redis.flushdb()  # the queued attempt is lost
        assert reconciler.reconcile(ctx)["webhook_deliveries"] == 0  # not overdue yet
        WebhookDelivery.update(next_attempt_at=datetime.datetime(2000, 1, 1)).where(
            WebhookDelivery.id == delivery_id).execute()
        assert reconciler.reconcile(ctx)["webhook_deliveries"] == 1
    (job_id,) = Queue(DEFAULT_QUEUE, connection=redis).get_job_ids()
    assert job_id.startswith(f"studio-webhook-{delivery_id}-")
