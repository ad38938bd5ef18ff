"""Health endpoints: /health checks every service, /health/live only this process."""
from __future__ import annotations

from flask import current_app, jsonify

from app.db import database, manages_own_connection
from app.extensions import get_store
from app.ops import bp, health
from app.queue import get_redis


@bp.get("/health")
@manages_own_connection
def health_report():
    """Every service with its status and latency; 503 when a required one is down."""
    redis = get_redis()
    checks = {
        "database": health.database_check(database),
        "storage": get_store().check,
        "redis": health.redis_check(redis),
        "workers": health.workers_check(redis),
    }
    document, status = health.report(checks)
    document["version"] = current_app.config["VERSION"]
    response = jsonify(document)
    response.headers["Cache-Control"] = "no-store"
    return response, status


@bp.get("/health/live")
@manages_own_connection
def liveness():
    """The process answers: enough for a container's liveness probe."""
    return jsonify(status="alive", version=current_app.config["VERSION"])
