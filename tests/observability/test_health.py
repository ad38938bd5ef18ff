"""Detailed health: who sees what, queue depths, Kaggle reachability (cached), and each service stopped in turn."""
from __future__ import annotations

import http.server
import shutil
import threading
from contextlib import contextmanager

from app.extensions import get_queue
from app.ops import health
from tests.support.processes import free_port, idle_workers, running, stop_group, wait_until, worker_pool


@contextmanager
def fake_kaggle():
    """A local HTTP server standing in for Kaggle's API; yields its URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v1"
    finally:
        server.shutdown()
        server.server_close()


METRICS_TOKEN = "metrics-token-Xk29-long-random"
MONITOR = {"Authorization": f"Bearer {METRICS_TOKEN}"}
# What anyone may learn of a service: whether it answers, and how fast.
PUBLIC_FIELDS = {"status", "response_time", "response_time_ms"}


def health_of(app, headers: dict | None = None) -> tuple[int, dict]:
    """Status code and document of /api/v1/health, as the monitor (METRICS_TOKEN) sees it unless told otherwise."""
    response = app.test_client().get("/api/v1/health", headers=MONITOR if headers is None else headers)
    return response.status_code, response.get_json()


def test_health_reports_how_many_jobs_wait_in_each_queue(make_app):
    app = make_app(metrics_token=METRICS_TOKEN)
    with app.app_context():
        get_queue("default").enqueue("workers.tasks.probe")
        get_queue("default").enqueue("workers.tasks.probe")
    status, document = health_of(app)
    assert status == 200
    assert document["services"]["redis"]["queues"] == {"default": 2, "training-local": 0}


def test_anonymous_health_shows_statuses_and_latencies_but_no_depths_or_errors(make_app):
    app = make_app(metrics_token=METRICS_TOKEN, training_backends="local,kaggle",
                   kaggle_api_url=f"http://127.0.0.1:{free_port()}/api/v1")
    with app.app_context():
        get_queue("default").enqueue("workers.tasks.probe")
    for headers in ({}, {"Authorization": "Bearer not-the-metrics-token"}):
        status, document = health_of(app, headers)
        assert status == 200 and document["status"] == "degraded"
        assert {name: set(entry) for name, entry in document["services"].items()} == dict.fromkeys(
            ("database", "storage", "redis", "workers", "kaggle"), PUBLIC_FIELDS)
        assert document["services"]["kaggle"]["status"] == document["services"]["workers"]["status"] == "down"
    health._kaggle_cache.clear()


def test_an_admins_token_sees_the_details_and_a_users_token_does_not(make_app, make_user, make_token):
    app = make_app(metrics_token=METRICS_TOKEN)
    admin, member = make_token(make_user(is_admin=True)), make_token(make_user())
    details = health_of(app, {"Authorization": f"Bearer {admin}"})[1]["services"]
    assert details["redis"]["queues"] == {"default": 0, "training-local": 0}
    assert details["workers"]["error"] and details["workers"]["count"] == 0
    public = health_of(app, {"Authorization": f"Bearer {member}"})[1]["services"]
    assert "queues" not in public["redis"] and set(public["workers"]) == PUBLIC_FIELDS


def test_kaggle_is_checked_only_when_it_is_a_backend(app):
    assert "kaggle" not in health_of(app)[1]["services"]


def test_kaggle_unreachable_degrades_health_but_keeps_200(make_app):
    status, document = health_of(make_app(metrics_token=METRICS_TOKEN, training_backends="local,kaggle",
                                          kaggle_api_url=f"http://127.0.0.1:{free_port()}/api/v1"))
    assert status == 200 and document["status"] == "degraded"
    assert document["services"]["kaggle"]["status"] == "down" and document["services"]["kaggle"]["error"]


def test_kaggle_reachability_is_cached_so_health_stays_fast(make_app):
    with fake_kaggle() as url:
        app = make_app(metrics_token=METRICS_TOKEN, training_backends="local,kaggle", kaggle_api_url=url)
        first = health_of(app)[1]["services"]["kaggle"]
    second = health_of(app)[1]["services"]["kaggle"]  # Kaggle is gone, but the answer is remembered
    assert first["status"] == second["status"] == "up"
    assert second["response_time_ms"] == first["response_time_ms"]
    health._kaggle_cache.clear()
    assert health_of(app)[1]["services"]["kaggle"]["status"] == "down"


def test_each_service_stopped_in_turn_is_reported_with_the_right_status(make_app, settings, tmp_path):
    port = free_port()
    redis_server = shutil.which("redis-server")
    with running([redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", ""], {},
                 tmp_path / "redis.log") as redis_process:
        app = make_app(redis_url=f"redis://127.0.0.1:{port}/0")
        wait_until(lambda: health_of(app)[1]["services"]["redis"]["status"] == "up", 15, "the private Redis")
        worker_settings = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0"})
        with worker_pool(worker_settings, tmp_path / "worker.log") as pool:
            wait_until(lambda: idle_workers(app.extensions["redis"]) == 1, 60, "a worker")
            assert health_of(app)[1]["status"] == "healthy"
            stop_group(pool)
            status, document = health_of(app)
            assert (status, document["status"], document["services"]["workers"]["status"]) == (200, "degraded",
                                                                                                "down")
        stop_group(redis_process)
        status, document = health_of(app)
    assert (status, document["status"], document["services"]["redis"]["status"]) == (503, "unhealthy", "down")
    assert document["services"]["database"]["status"] == document["services"]["storage"]["status"] == "up"
