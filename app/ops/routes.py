"""Operations endpoints: /health checks every service, /health/live only this process, /metrics for Prometheus."""
from __future__ import annotations

import hmac
import logging

import peewee
from flask import Blueprint, current_app, jsonify, request

from app import metrics
from app.auth import service as auth_service
from app.db import database, manages_own_connection
from app.extensions import get_redis, get_store
from app.ops import health
from app.queue import watched_queues
from app.security import probe

log = logging.getLogger(__name__)
bp = Blueprint("ops", __name__, url_prefix="/api/v1")


@bp.get("/health")
@probe
@manages_own_connection
def health_report():
    """Every service with its status and latency; 503 when a required one is down, degraded for the rest."""
    redis, settings = get_redis(), current_app.extensions["settings"]
    checks = {
        "database": health.database_check(database),
        "storage": get_store().check,
        "redis": health.redis_check(redis, watched_queues(settings.queue_names)),
        "workers": health.workers_check(redis),
    }
    if "kaggle" in settings.backend_names:
        checks["kaggle"] = health.kaggle_health(settings.kaggle_api_url)
    document, status = health.report(checks)
    document["version"] = current_app.config["VERSION"]
    response = jsonify(document if sees_details(settings.metrics_token) else health.public_view(document))
    response.headers["Cache-Control"] = "no-store"
    return response, status


def sees_details(metrics_token: str) -> bool:
    """Whether the caller may see queue depths and errors: the monitor (METRICS_TOKEN) or an admin's API token."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return False
    if metrics_token and hmac.compare_digest(token.encode(), metrics_token.encode()):
        return True
    try:
        with database.connection_context():
            user = auth_service.user_for_token(token)
    except (peewee.DatabaseError, peewee.InterfaceError):
        # Health must answer while the database is down; the caller then sees what anyone sees.
        log.warning("health could not check the caller's token: the database is unavailable")
        return False
    return bool(user and user.is_admin)


@bp.get("/health/live")
@probe
@manages_own_connection
def liveness():
    """The process answers: enough for a container's liveness probe."""
    return jsonify(status="alive", version=current_app.config["VERSION"])


@bp.get("/metrics")
@probe
@manages_own_connection
def prometheus_metrics():
    """The Prometheus exposition of the Studio's metrics; needs METRICS_TOKEN when one is set."""
    return metrics.metrics_view()
