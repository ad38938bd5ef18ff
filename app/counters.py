"""Counters and histograms kept in Redis, so that every process on every host (web, workers) adds to the same
series and one scrape of /api/v1/metrics sees them all. No Flask here: the job domain counts through it."""
from __future__ import annotations

import contextlib
import json
import logging
import math

from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# Events of every process on every host (web, workers), counted in Redis so one scrape sees them all.
REDIS_KEY = "studio:metrics"
STEP_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600)
STORAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120)
REDIS_METRICS = {
    "studio_job_step_duration_seconds": ("histogram", "Job steps run by the workers, by task and outcome",
                                         STEP_BUCKETS),
    "studio_job_step_failures": ("counter", "Job steps that failed, by task", None),
    "studio_storage_operation_duration_seconds": ("histogram", "Object-storage operations, by operation",
                                                  STORAGE_BUCKETS),
    "studio_storage_operation_errors": ("counter", "Object-storage operations that failed, by operation", None),
    "studio_kaggle_api_calls": ("counter", "Calls to the Kaggle API, by operation and outcome", None),
    "studio_sweeper_removed": ("counter", "Leftovers the sweeper removed, by kind", None),
    "studio_sweeper_failures": ("counter", "Parts of a sweep that failed, by kind", None),
}


def record_sweep(redis, removed: dict[str, int], failed: list[str]) -> None:
    """Count what one sweep removed, and the parts of it that failed."""
    for kind, count in removed.items():
        if count:
            increment(redis, "studio_sweeper_removed", {"kind": kind}, count)
    for kind in failed:
        increment(redis, "studio_sweeper_failures", {"kind": kind})


def record_storage_operation(redis, operation: str, seconds: float, failed: bool) -> None:
    """Count one object-storage operation."""
    labels = {"operation": operation}
    observe(redis, "studio_storage_operation_duration_seconds", labels, seconds)
    if failed:
        increment(redis, "studio_storage_operation_errors", labels)


def record_job_step(redis, task: str, seconds: float, succeeded: bool) -> None:
    """Count one job step a worker ran."""
    observe(redis, "studio_job_step_duration_seconds",
            {"task": task, "outcome": "succeeded" if succeeded else "failed"}, seconds)
    if not succeeded:
        increment(redis, "studio_job_step_failures", {"task": task})


@contextlib.contextmanager
def kaggle_call(redis, operation: str):
    """Count a call to the Kaggle API made inside the block, as ok or error by whether it raised."""
    try:
        yield
    except Exception:
        increment(redis, "studio_kaggle_api_calls", {"operation": operation, "outcome": "error"})
        raise
    increment(redis, "studio_kaggle_api_calls", {"operation": operation, "outcome": "ok"})


def _field(name: str, labels: dict, suffix: str = "") -> str:
    """The Redis hash field of one series."""
    return json.dumps([name + suffix, labels], sort_keys=True)


def increment(redis, name: str, labels: dict, amount: float = 1) -> None:
    """Add amount to a Redis-held counter; a Redis failure costs the sample, never the operation."""
    with _tolerating_redis(name):
        redis.hincrbyfloat(REDIS_KEY, _field(name, labels, "_total"), amount)


def observe(redis, name: str, labels: dict, value: float) -> None:
    """Add a sample to a Redis-held histogram (cumulative buckets, sum and count)."""
    buckets = REDIS_METRICS[name][2]
    with _tolerating_redis(name):
        pipe = redis.pipeline(transaction=False)
        for bound in (*buckets, math.inf):
            if value <= bound:
                pipe.hincrby(REDIS_KEY, _field(name, {**labels, "le": _bound(bound)}, "_bucket"), 1)
        pipe.hincrbyfloat(REDIS_KEY, _field(name, labels, "_sum"), value)
        pipe.hincrby(REDIS_KEY, _field(name, labels, "_count"), 1)
        pipe.execute()


def _bound(bound: float) -> str:
    """A bucket bound as Prometheus writes it."""
    return "+Inf" if bound == math.inf else repr(float(bound))


@contextlib.contextmanager
def _tolerating_redis(name: str):
    """Swallow (and log) a Redis error while recording a metric."""
    try:
        yield
    except RedisError as error:
        log.warning("metric %s not recorded: %s", name, error)
