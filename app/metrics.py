"""Prometheus metrics: HTTP and database per web process, cluster-wide events in Redis, the rest read at scrape time."""
from __future__ import annotations

import hmac
import json
import logging
import math
import os
import time

import peewee
from flask import Flask, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.samples import Sample
from prometheus_flask_exporter import PrometheusMetrics
from redis.exceptions import RedisError
from rq import Queue, Worker

from app.counters import REDIS_KEY, REDIS_METRICS, record_storage_operation
from app.errors import Unauthorized
from app.queue import watched_queues
from app.storage import ObjectNotFound

log = logging.getLogger(__name__)

# Metrics of this process (gunicorn writes them to PROMETHEUS_MULTIPROC_DIR, where every worker's are summed).
PROCESS_REGISTRY = CollectorRegistry()
DB_QUERY_SECONDS = Histogram("studio_db_query_duration_seconds", "Database statements, by kind", ["statement"],
                             registry=PROCESS_REGISTRY)
DB_POOL_IN_USE = Gauge("studio_db_pool_connections_in_use", "Pooled database connections checked out",
                       registry=PROCESS_REGISTRY, multiprocess_mode="livesum")

# Statement kinds that get a label of their own; the rest are OTHER, so the label stays bounded.
SQL_VERBS = {"SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "BEGIN", "COMMIT", "ROLLBACK"}
STORE_OPERATIONS = ("put", "iter_chunks", "stat", "delete", "check")


def init_app(app: Flask) -> None:
    """HTTP metrics, database and storage timing for app; the scrape view is registered by the ops blueprint."""
    # A registry per app: the exporter's metrics must not collide when tests build many apps in one process.
    registry = CollectorRegistry()
    exporter = PrometheusMetrics(app, path=None, registry=registry, defaults_prefix="studio", group_by=endpoint,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
    app.extensions["metrics"] = exporter
    instrument_database(app)
    instrument_store(app.extensions["store"], app.extensions["redis"])


def endpoint(req) -> str:
    """The label of a request's route (its endpoint name), bounded whatever the URL."""
    return req.endpoint or "unrouted"


def instrument_database(app: Flask) -> None:
    """Time every statement of the app's database and track the pool's checked-out connections."""
    from app.db import database

    db = database.obj
    execute = db.execute_sql

    def timed_execute_sql(sql, params=None, *args, **kwargs):
        started = time.perf_counter()
        try:
            return execute(sql, params, *args, **kwargs)
        finally:
            verb = sql.split(None, 1)[0].upper() if sql.strip() else ""
            DB_QUERY_SECONDS.labels(statement=verb if verb in SQL_VERBS else "OTHER").observe(
                time.perf_counter() - started)

    db.execute_sql = timed_execute_sql
    if hasattr(db, "_in_use"):
        app.before_request(lambda: DB_POOL_IN_USE.set(len(db._in_use)))
        app.teardown_appcontext(lambda _exc: DB_POOL_IN_USE.set(len(db._in_use)))


def instrument_store(store, redis) -> None:
    """Time each operation of the object store and count its failures (a missing object is no failure)."""
    for operation in STORE_OPERATIONS:
        setattr(store, operation, _timed_operation(getattr(store, operation), operation, redis))


def _timed_operation(method, operation: str, redis):
    """method, recording its duration and failures under operation."""

    def timed(*args, **kwargs):
        started = time.perf_counter()
        failed = False
        try:
            return method(*args, **kwargs)
        except ObjectNotFound:
            raise
        except Exception:
            failed = True
            raise
        finally:
            record_storage_operation(redis, operation, time.perf_counter() - started, failed)

    return timed


def metrics_view():
    """The Prometheus exposition of every metric; closed by METRICS_TOKEN when it is set."""
    _check_metrics_token(current_app.extensions["settings"].metrics_token)
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(_RegistryCollector(current_app.extensions["metrics"].registry))
        registry.register(_RegistryCollector(PROCESS_REGISTRY))
    registry.register(ScrapeTimeCollector(current_app._get_current_object()))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def _check_metrics_token(expected: str) -> None:
    """Refuse the scrape unless it carries the token (when one is configured)."""
    if not expected:
        return
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise Unauthorized("Send METRICS_TOKEN as 'Authorization: Bearer <token>'.")


class _RegistryCollector:
    """Another registry's metrics, as one collector (for a single process, where no files are shared)."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry

    def collect(self):
        """Every metric of the wrapped registry."""
        return self.registry.collect()


class ScrapeTimeCollector:
    """What is read when Prometheus scrapes: version, jobs, queues, workers and the Redis-held events."""

    def __init__(self, app: Flask):
        self.app = app

    def collect(self):
        """Each family; one that cannot be read (its service is down) is left out and logged."""
        info = InfoMetricFamily("studio", "Finetune Studio version")
        info.add_metric([], {"version": self.app.config["VERSION"]})
        yield info
        redis = self.app.extensions["redis"]
        for read in (self._jobs, lambda: self._queues(redis), lambda: _redis_families(redis)):
            try:
                yield from read()
            except (RedisError, peewee.PeeweeException) as error:
                log.warning("metrics: a family could not be read: %s", error)

    def _jobs(self):
        """Jobs by status and backend, in one grouped query."""
        from app.db import database
        from app.models import Job

        family = GaugeMetricFamily("studio_jobs", "Jobs by status and backend", labels=["status", "backend"])
        with database.connection_context():
            rows = Job.select(Job.status, Job.backend, peewee.fn.COUNT(Job.id)).group_by(Job.status, Job.backend)
            for status, backend, count in rows.tuples():
                family.add_metric([status, backend], count)
        return [family]

    def _queues(self, redis):
        """Jobs waiting in each RQ queue, and the workers alive."""
        depth = GaugeMetricFamily("studio_rq_queue_depth", "Jobs waiting in each RQ queue", labels=["queue"])
        for name in watched_queues(self.app.extensions["settings"].queue_names):
            depth.add_metric([name], Queue(name, connection=redis).count)
        workers = GaugeMetricFamily("studio_rq_workers", "RQ workers alive (registered in Redis)")
        workers.add_metric([], Worker.count(connection=redis))
        return [depth, workers]


def _redis_families(redis):
    """The Redis-held counters and histograms as metric families."""
    series: dict[str, list] = {name: [] for name in REDIS_METRICS}
    for field, value in redis.hgetall(REDIS_KEY).items():
        sample_name, labels = json.loads(field)
        base = next((name for name in REDIS_METRICS if sample_name.startswith(name)), None)
        if base:
            series[base].append((sample_name, labels, float(value)))
    for name, (kind, documentation, _buckets) in REDIS_METRICS.items():
        yield _family(name, kind, documentation, series[name])


def _family(name: str, kind: str, documentation: str, samples: list):
    """One counter or histogram family from its samples."""
    family_class = CounterMetricFamily if kind == "counter" else HistogramMetricFamily
    family = family_class(name, documentation, labels=sorted({k for _s, labels, _v in samples for k in labels}))
    family.samples.extend(Sample(*sample) for sample in sorted(samples, key=_sample_order))
    return family


def _sample_order(sample) -> tuple:
    """Samples grouped by series, buckets in increasing order."""
    sample_name, labels, _value = sample
    series = {k: v for k, v in labels.items() if k != "le"}
    bound = float(labels["le"]) if "le" in labels else math.inf
    return json.dumps(series, sort_keys=True), sample_name.endswith("_bucket") is False, bound, sample_name
