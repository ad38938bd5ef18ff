"""Operations endpoints: /health checks every service, /health/live only this process, /metrics for Prometheus."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from app import metrics
from app.db import database, manages_own_connection
from app.extensions import get_redis, get_store
from app.ops import health
from app.security import probe

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
        "redis": health.redis_check(redis, settings.queue_names),
        "workers": health.workers_check(redis),
    }
    if "kaggle" in settings.backend_names:
        checks["kaggle"] = health.kaggle_health(settings.kaggle_api_url)
    document, status = health.report(checks)
    document["version"] = current_app.config["VERSION"]
    response = jsonify(document)
    response.headers["Cache-Control"] = "no-store"
    return response, status


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
