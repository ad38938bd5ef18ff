"""Health checks of each service the Studio depends on, timed; no Flask here."""
from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from rq import Queue, Worker

log = logging.getLogger(__name__)

STARTED_AT = time.monotonic()
# A service in this set being down makes the Studio unhealthy (503); the others only degrade it.
REQUIRED_SERVICES = ("database", "storage", "redis")
# What anonymous callers learn of each service: whether it answers and how fast, never depths or errors.
PUBLIC_FIELDS = ("status", "response_time", "response_time_ms")
# Kaggle is probed at most this often per process, so health stays fast and Kaggle is not hammered.
KAGGLE_CHECK_TTL_SECONDS = 60
KAGGLE_TIMEOUT_SECONDS = 3
_kaggle_cache: dict[str, tuple[float, ServiceHealth]] = {}
_kaggle_lock = threading.Lock()


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


def redis_check(redis, queue_names: list[str]) -> Callable[[], dict]:
    """A probe that pings Redis and reports how many jobs wait in each queue."""

    def check():
        redis.ping()
        return {"queues": {name: Queue(name, connection=redis).count for name in queue_names}}

    return check


def kaggle_health(api_url: str) -> ServiceHealth:
    """Whether Kaggle's API answers (any answer below 500 will do), remembered for a minute."""
    with _kaggle_lock:
        checked_at, health = _kaggle_cache.get(api_url, (0.0, None))
        if health is None or time.monotonic() - checked_at > KAGGLE_CHECK_TTL_SECONDS:
            health = timed(lambda: _reach(api_url))
            _kaggle_cache[api_url] = (time.monotonic(), health)
    return health


def _reach(url: str) -> None:
    """Raise unless url answers with a status below 500."""
    try:
        # Settings accept only http(s) URLs for KAGGLE_API_URL.
        request = urllib.request.Request(url, method="HEAD")  # noqa: S310
        urllib.request.urlopen(request, timeout=KAGGLE_TIMEOUT_SECONDS).close()  # noqa: S310
    except urllib.error.HTTPError as error:
        if error.code >= 500:
            raise


def workers_check(redis) -> Callable[[], dict]:
    """A probe that counts the RQ workers registered in Redis; none means down."""

    def check():
        count = Worker.count(connection=redis)
        if count == 0:
            raise RuntimeError("no worker is running")
        return {"count": count}

    return check


def report(checks: dict[str, Callable | ServiceHealth]) -> tuple[dict, int]:
    """The health document and its HTTP status: 503 when a required service is down, degraded for others."""
    services = {name: check if isinstance(check, ServiceHealth) else timed(check) for name, check in checks.items()}
    down = {name for name, health in services.items() if health.status != "up"}
    status = "unhealthy" if down & set(REQUIRED_SERVICES) else "degraded" if down else "healthy"
    document = {"status": status, "uptime": format_uptime(time.monotonic() - STARTED_AT),
                "uptime_seconds": round(time.monotonic() - STARTED_AT, 1),
                "services": {name: health.as_dict() for name, health in services.items()}}
    if "workers" in services and services["workers"].status != "up":
        document["services"]["workers"]["count"] = 0
    return document, 503 if status == "unhealthy" else 200


def public_view(document: dict) -> dict:
    """The health document with each service reduced to its status and latency, for anonymous callers."""
    services = {name: {field: entry[field] for field in PUBLIC_FIELDS if field in entry}
                for name, entry in document["services"].items()}
    return {**document, "services": services}


def format_uptime(seconds: float) -> str:
    """Seconds as 2h15m30s."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m{secs}s" if hours else f"{minutes}m{secs}s" if minutes else f"{secs}s"
