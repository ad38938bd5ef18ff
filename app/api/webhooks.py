"""Webhook routes of the API: endpoints (the secret shown once), rotation, the delivery log, redelivery."""
from __future__ import annotations

from flask import jsonify, request

from app.api import schemas
from app.api.auth import current_api_user
from app.api.blueprint import bp
from app.errors import ValidationFailed
from app.extensions import get_settings
from app.models import WebhookEndpoint
from app.pagination import page_request
from app.webhooks import endpoints


def _body() -> dict:
    """The request's JSON object."""
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        raise ValidationFailed("Send a JSON object.", details={"field": "body"})
    return payload


def _owned(endpoint_id: int) -> WebhookEndpoint:
    """The user's endpoint, or 404."""
    return WebhookEndpoint.get_owned(endpoint_id, current_api_user())


@bp.post("/webhooks")
def create_webhook():
    """Create an endpoint; 201 with its secret, shown this once."""
    payload = _body()
    endpoint, secret = endpoints.create_endpoint(current_api_user(), payload.get("url"), payload.get("events"),
                                                 get_settings())
    return jsonify({**schemas.webhook_dict(endpoint), "secret": secret}), 201


@bp.get("/webhooks")
def list_webhooks():
    """The user's endpoints (without secrets)."""
    return jsonify(data=[schemas.webhook_dict(e) for e in endpoints.list_endpoints(current_api_user())])


@bp.patch("/webhooks/<int:endpoint_id>")
def update_webhook(endpoint_id: int):
    """Change an endpoint's url, events or enabled."""
    endpoint = endpoints.update_endpoint(_owned(endpoint_id), _body(), get_settings())
    return jsonify(schemas.webhook_dict(endpoint))


@bp.delete("/webhooks/<int:endpoint_id>")
def delete_webhook(endpoint_id: int):
    """Delete an endpoint and its delivery log."""
    endpoints.delete_endpoint(_owned(endpoint_id))
    return "", 204


@bp.post("/webhooks/<int:endpoint_id>/rotate")
def rotate_webhook_secret(endpoint_id: int):
    """A new secret for the endpoint, shown this once."""
    endpoint = _owned(endpoint_id)
    secret = endpoints.rotate_secret(endpoint, get_settings())
    return jsonify({**schemas.webhook_dict(endpoint), "secret": secret})


@bp.get("/webhooks/<int:endpoint_id>/deliveries")
def list_webhook_deliveries(endpoint_id: int):
    """The endpoint's deliveries, newest first: status, attempts, latency, an excerpt of the answer."""
    result = endpoints.deliveries(_owned(endpoint_id), page_request(request.args, numbered=True),
                                  get_settings().list_count_limit)
    return jsonify(data=[schemas.delivery_dict(d) for d in result.items], meta=result.meta())


@bp.post("/webhooks/<int:endpoint_id>/deliveries/<int:delivery_id>/redeliver")
def redeliver_webhook(endpoint_id: int, delivery_id: int):
    """Send a delivery's message again; 202 with the new delivery."""
    endpoint = _owned(endpoint_id)
    again = endpoints.redeliver(endpoint, endpoints.get_delivery(endpoint, delivery_id))
    return jsonify(schemas.delivery_dict(again)), 202
