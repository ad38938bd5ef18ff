"""Endpoints of a user's: create (the secret shown once), change, delete, rotate, deliveries, redeliver."""
from __future__ import annotations

from app.errors import NotFound, ValidationFailed
from app.models import User, WebhookDelivery, WebhookEndpoint, utcnow
from app.pagination import Page, PageRequest, paginate
from app.webhooks import event_types, keys, outbox
from app.webhooks.addresses import validated_url

MAX_ENDPOINTS = 20


def _events(value) -> list[str]:
    """A non-empty list of known event types, each once."""
    if not isinstance(value, list) or not value or not all(isinstance(name, str) for name in value):
        raise ValidationFailed("events must be a non-empty list of event types.", details={"events": "invalid"})
    unknown = [name for name in value if event_types.get(name) is None]
    if unknown:
        raise ValidationFailed(f"Unknown event types: {', '.join(unknown)}; use {', '.join(event_types.names())}.",
                               details={"events": f"unknown: {', '.join(unknown)}"})
    return list(dict.fromkeys(value))


def create_endpoint(owner: User, url, events, settings) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret (in plain text only here: it is stored encrypted)."""
    url, events = validated_url(url, settings.webhooks_allow_private_addresses), _events(events)
    if WebhookEndpoint.select().where(WebhookEndpoint.owner == owner.id).count() >= MAX_ENDPOINTS:
        raise ValidationFailed(f"You have {MAX_ENDPOINTS} endpoints, the most allowed.", details={"url": "limit"})
    secret = keys.new_secret()
    endpoint = WebhookEndpoint.create(owner=owner, url=url, events=events,
                                      secret_encrypted=keys.encrypt(settings, secret))
    return endpoint, secret


def update_endpoint(endpoint: WebhookEndpoint, changes: dict, settings) -> WebhookEndpoint:
    """Change url, events or enabled; enabling again forgets the failures that disabled it."""
    unknown = sorted(set(changes) - {"url", "events", "enabled"})
    if unknown:
        raise ValidationFailed("Unknown fields.", details={name: "not an endpoint field" for name in unknown})
    if "url" in changes:
        endpoint.url = validated_url(changes["url"], settings.webhooks_allow_private_addresses)
    if "events" in changes:
        endpoint.events = _events(changes["events"])
    if "enabled" in changes:
        if not isinstance(changes["enabled"], bool):
            raise ValidationFailed("enabled must be true or false.", details={"enabled": "invalid"})
        if changes["enabled"] and not endpoint.enabled:
            endpoint.consecutive_failures, endpoint.disabled_reason = 0, None
        endpoint.enabled = changes["enabled"]
    endpoint.updated_at = utcnow()
    endpoint.save()
    return endpoint


def rotate_secret(endpoint: WebhookEndpoint, settings) -> str:
    """Give the endpoint a new secret; the old one stops signing at once."""
    secret = keys.new_secret()
    endpoint.secret_encrypted, endpoint.updated_at = keys.encrypt(settings, secret), utcnow()
    endpoint.save()
    return secret


def delete_endpoint(endpoint: WebhookEndpoint) -> None:
    """Delete the endpoint and its delivery log."""
    endpoint.delete_instance()


def list_endpoints(owner: User) -> list[WebhookEndpoint]:
    """The owner's endpoints, oldest first."""
    return list(WebhookEndpoint.select().where(WebhookEndpoint.owner == owner.id).order_by(WebhookEndpoint.id))


def deliveries(endpoint: WebhookEndpoint, request: PageRequest, count_limit: int) -> Page:
    """The endpoint's deliveries, newest first (by keyset on the id), counted up to count_limit."""
    query = WebhookDelivery.select().where(WebhookDelivery.endpoint == endpoint.id)
    return paginate(query, WebhookDelivery.id, request, count_limit)


def get_delivery(endpoint: WebhookEndpoint, delivery_id) -> WebhookDelivery:
    """One delivery of the endpoint's, or NotFound."""
    row = WebhookDelivery.get_or_none((WebhookDelivery.id == delivery_id) & (WebhookDelivery.endpoint == endpoint.id))
    if row is None:
        raise NotFound("delivery not found")
    return row


def redeliver(endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send the same message again (same id, so a receiver can tell) as a new delivery."""
    again = WebhookDelivery.create(endpoint=endpoint.id, event_id=delivery.event_id, event_type=delivery.event_type,
                                   body=delivery.body, next_attempt_at=utcnow())
    outbox.enqueue(again.id)
    return again
