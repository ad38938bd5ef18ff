"""One delivery attempt: claimed on its row (so a duplicate task does nothing), the address checked again (DNS
rebinding), signed, sent, recorded; a failure is retried by the schedule and counts against the endpoint."""
from __future__ import annotations

import datetime
import logging
import time

import requests

from app.models import WebhookDelivery, WebhookEndpoint, utcnow
from app.webhooks import keys, outbox
from app.webhooks.addresses import AddressRefused, check_url, pinned_url
from app.webhooks.signing import signed_headers

log = logging.getLogger(__name__)

EXCERPT_CHARS = 500
# How long a claimed attempt may take before the reconciler thinks it was lost (beyond the request timeout).
CLAIM_GRACE_SECONDS = 30
# RQ's scheduler keeps whole seconds, so a retry's job may start up to a second before the row says it is due.
EARLY_SECONDS = 2
WAITING = ("pending", "retrying")


def deliver(delivery_id: int, settings, redis=None) -> str:
    """Make the delivery's next attempt if it is due; what became of it."""
    delivery = _claim(delivery_id, settings.webhooks_timeout_seconds)
    if delivery is None:
        return "not due"
    endpoint = delivery.endpoint
    if not endpoint.enabled:
        _finish(delivery, "failed", {"response_excerpt": "not sent: the endpoint is disabled"})
        return "failed"
    status, latency_ms, excerpt = _send(delivery, endpoint, settings)
    attempt = {"response_status": status, "latency_ms": latency_ms, "response_excerpt": excerpt[:EXCERPT_CHARS]}
    if status is not None and 200 <= status < 300:
        _finish(delivery, "succeeded", {**attempt, "delivered_at": utcnow()})
        WebhookEndpoint.update(consecutive_failures=0).where(WebhookEndpoint.id == endpoint.id).execute()
        return "succeeded"
    enabled = _count_failure(endpoint, settings.webhooks_disable_after_failures)
    delays = settings.webhook_retry_delays
    if not enabled or delivery.attempts > len(delays):
        _finish(delivery, "failed", attempt)
        return "failed"
    delay = delays[delivery.attempts - 1]
    _finish(delivery, "retrying", {**attempt, "next_attempt_at": utcnow() + datetime.timedelta(seconds=delay)})
    outbox.enqueue(delivery.id, delay, redis=redis)
    return "retrying"


def _claim(delivery_id: int, timeout: float) -> WebhookDelivery | None:
    """Take the delivery's due attempt (counted now), or None when it is not due or already taken."""
    now = utcnow()
    held_until = now + datetime.timedelta(seconds=timeout + CLAIM_GRACE_SECONDS)
    claimed = WebhookDelivery.update(attempts=WebhookDelivery.attempts + 1, next_attempt_at=held_until).where(
        (WebhookDelivery.id == delivery_id) & WebhookDelivery.status.in_(WAITING)
        & (WebhookDelivery.next_attempt_at <= now + datetime.timedelta(seconds=EARLY_SECONDS))).execute()
    if not claimed:
        return None
    return WebhookDelivery.select(WebhookDelivery, WebhookEndpoint).join(WebhookEndpoint).where(
        WebhookDelivery.id == delivery_id).get()


def _send(delivery: WebhookDelivery, endpoint: WebhookEndpoint, settings) -> tuple[int | None, int, str]:
    """POST the signed body; the status (None: not answered), latency in ms and an excerpt of the answer."""
    started = time.perf_counter()
    try:
        url, host = pinned_url(endpoint.url, check_url(endpoint.url, settings.webhooks_allow_private_addresses))
        secret = keys.decrypt(settings, endpoint.secret_encrypted)
        headers = {**signed_headers(secret, delivery.event_id, delivery.body), **host}
        with requests.post(url, data=delivery.body.encode(), headers=headers, stream=True,
                           timeout=settings.webhooks_timeout_seconds, allow_redirects=False) as response:
            excerpt = response.raw.read(4 * EXCERPT_CHARS, decode_content=True).decode("utf-8", "replace")
            return response.status_code, _ms_since(started), excerpt
    except AddressRefused as refused:
        return None, _ms_since(started), f"not sent: {refused}"
    except requests.RequestException as error:
        log.info("webhook delivery %s to endpoint %s failed: %s", delivery.id, endpoint.id, error)
        return None, _ms_since(started), f"no answer: {type(error).__name__}: {error}"


def _ms_since(started: float) -> int:
    """Milliseconds since a perf_counter reading."""
    return int((time.perf_counter() - started) * 1000)


def _finish(delivery: WebhookDelivery, status: str, fields: dict) -> None:
    """Record the attempt's outcome on the row."""
    WebhookDelivery.update(status=status, **fields).where(WebhookDelivery.id == delivery.id).execute()


def _count_failure(endpoint: WebhookEndpoint, disable_after: int) -> bool:
    """One more failure in a row for the endpoint, disabling it at the limit; whether it is still enabled."""
    WebhookEndpoint.update(consecutive_failures=WebhookEndpoint.consecutive_failures + 1).where(
        WebhookEndpoint.id == endpoint.id).execute()
    reason = f"disabled after {disable_after} failed deliveries in a row; fix the receiver and enable it again"
    WebhookEndpoint.update(enabled=False, disabled_reason=reason, updated_at=utcnow()).where(
        (WebhookEndpoint.id == endpoint.id) & WebhookEndpoint.enabled
        & (WebhookEndpoint.consecutive_failures >= disable_after)).execute()
    return bool(WebhookEndpoint.select(WebhookEndpoint.enabled).where(WebhookEndpoint.id == endpoint.id).scalar())
