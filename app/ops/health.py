"""Health checks of each service the Studio depends on, timed; no Flask here."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from rq import Worker

log = logging.getLogger(__name__)

STARTED_AT = time.monotonic()
# A service in this set being down makes the Studio unhealthy (503); the others only degrade it.
REQUIRED_SERVICES = ("database", "storage", "redis")


@dataclass
class ServiceHealth:
    """How one service answered."""

    status: str
    response_ms: float
    error: str | None = None
    extra: dict | None = None

    def as_dict(self) -> dict:
        """The service's entry in the health document."""
        entry = {"status": self.status, "response_time": f"{self.response_ms:.0f}ms",
                 "response_time_ms": round(self.response_ms, 2)}
        if self.error:
            entry["error"] = self.error
        entry.update(self.extra or {})
        return entry


def timed(check: Callable[[], dict | None]) -> ServiceHealth:
    """Run check; up with its extra fields if it returns, down with a short reason if it raises."""
    started = time.perf_counter()
    try:
        extra = check()
        return ServiceHealth("up", _ms_since(started), extra=extra)
    except Exception as error:  # any failure of a probe means the service is down, whatever its type
        log.warning("health check failed: %s", error)
        return ServiceHealth("down", _ms_since(started), error=short_reason(error))


def _ms_since(started: float) -> float:
    """Milliseconds elapsed since started."""
    return (time.perf_counter() - started) * 1000


def short_reason(error: Exception) -> str:
    """The first line of an error, bounded, for a public health document."""
    first_line = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first_line[:160]}"


def database_check(db) -> Callable[[], None]:
    """A probe that opens a connection and runs SELECT 1."""

    def check():
        with db.connection_context():
            db.execute_sql("SELECT 1").fetchone()

    return check


def redis_check(redis) -> Callable[[], None]:
    """A probe that pings Redis."""
    return lambda: redis.ping() and None


def workers_check(redis) -> Callable[[], dict]:
    """A probe that counts the RQ workers registered in Redis; none means down."""

    def check():
        count = Worker.count(connection=redis)
        if count == 0:
            raise RuntimeError("no worker is running")
        return {"count": count}

    return check


def report(checks: dict[str, Callable]) -> tuple[dict, int]:
    """The health document and its HTTP status: 503 when a required service is down."""
    services = {name: timed(check) for name, check in checks.items()}
    down = {name for name, health in services.items() if health.status != "up"}
    status = "unhealthy" if down & set(REQUIRED_SERVICES) else "degraded" if down else "healthy"
    document = {"status": status, "uptime": format_uptime(time.monotonic() - STARTED_AT),
                "uptime_seconds": round(time.monotonic() - STARTED_AT, 1),
                "services": {name: health.as_dict() for name, health in services.items()}}
    if "workers" in services and services["workers"].status != "up":
        document["services"]["workers"]["count"] = 0
    return document, 503 if status == "unhealthy" else 200


def format_uptime(seconds: float) -> str:
    """Seconds as 2h15m30s."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m{secs}s" if hours else f"{minutes}m{secs}s" if minutes else f"{secs}s"
