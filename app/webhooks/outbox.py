"""Events recorded as deliveries, one per subscribed endpoint, in the database first (a lost Redis loses none),
then put on the queue: by the process that saw the event when it can, else by the reconciler's next pass."""
from __future__ import annotations

import calendar
import datetime
import json
import logging
import secrets
from collections.abc import Callable

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

from app.models import Dataset, Job, WebhookDelivery, WebhookEndpoint, utcnow
from app.queue import DEFAULT_QUEUE
from app.webhooks import event_types

log = logging.getLogger(__name__)

TASK = "workers.tasks.deliver_webhook"


def _no_connection() -> Redis | None:
    """Before the app says how to reach Redis, deliveries wait for the reconciler."""
    return None


# How this process reaches Redis now (set by app/webhooks/runtime.py: the current app's client).
current_redis: Callable[[], Redis | None] = _no_connection


def job_moved(job: Job, status: str) -> None:
    """Announce a job's move to status, if that move is an event."""
    name = event_types.JOB_STATUS_EVENTS.get(status)
    if name:
        publish(job.owner_id, name, {"id": f"ftjob-{job.id}", "studio_id": job.id, "status": status})


def dataset_finished(dataset: Dataset) -> None:
    """Announce the end of a dataset's validation."""
    name = event_types.DATASET_STATUS_EVENTS.get(dataset.status)
    if name:
        publish(dataset.owner_id, name, {"id": f"file-{dataset.id}", "studio_id": dataset.id,
                                         "status": dataset.status})


def publish(owner_id: int, event_type: str, data: dict) -> list[int]:
    """Record the event for each of the owner's enabled endpoints that subscribed to it; the delivery ids."""
    endpoints = [e for e in WebhookEndpoint.select().where((WebhookEndpoint.owner == owner_id)
                                                           & WebhookEndpoint.enabled) if event_type in e.events]
    if not endpoints:
        return []
    event_id = f"evt_{secrets.token_hex(12)}"
    body = json.dumps({"id": event_id, "object": "event", "type": event_type, "data": data,
                       "created_at": calendar.timegm(utcnow().utctimetuple())}, separators=(",", ":"))
    ids = [WebhookDelivery.create(endpoint=e.id, event_id=event_id, event_type=event_type, body=body,
                                  next_attempt_at=utcnow()).id for e in endpoints]
    for delivery_id in ids:
        enqueue(delivery_id)
    return ids


def enqueue(delivery_id: int, delay: float = 0.0, redis: Redis | None = None) -> bool:
    """Put one delivery attempt on the queue (after delay seconds); False when Redis cannot be reached now."""
    connection = redis or current_redis()
    if connection is None:
        return False
    queue = Queue(DEFAULT_QUEUE, connection=connection)
    options = dict(job_id=f"studio-webhook-{delivery_id}-{secrets.token_hex(4)}", result_ttl=3600,
                   failure_ttl=7 * 86400)
    try:
        if delay > 0:
            queue.enqueue_in(datetime.timedelta(seconds=delay), TASK, delivery_id, **options)
        else:
            queue.enqueue(TASK, delivery_id, **options)
    except RedisError as error:
        log.warning("webhook delivery %s not enqueued (%s); the reconciler will", delivery_id, error)
        return False
    return True


# A pending delivery this late was never taken (its queued attempt was lost with Redis, or never enqueued).
OVERDUE_SECONDS = 30


def enqueue_overdue(redis: Redis) -> int:
    """Enqueue every delivery whose attempt is overdue; how many (run by the reconciler's pass)."""
    overdue = utcnow() - datetime.timedelta(seconds=OVERDUE_SECONDS)
    rows = WebhookDelivery.select(WebhookDelivery.id).where(
        WebhookDelivery.status.in_(("pending", "retrying")) & (WebhookDelivery.next_attempt_at < overdue))
    return sum(enqueue(row.id, redis=redis) for row in rows)
