"""Health: every service checked for real (503 when a required one is down, degraded without workers), who sees
what, queue depths, Kaggle reachability (cached), and each service stopped in turn."""
from __future__ import annotations

import http.server
import shutil
import threading
from contextlib import contextmanager

import pytest

from app.extensions import get_queue
from app.factory import create_app
from app.ops import health
from tests.support.ports import free_port
from tests.support.processes import running, stop_group
from tests.support.settings import make_settings
from tests.support.waiting import wait_until
from tests.support.workers import idle_workers, worker_pool

# The monitor's token: with it, health shows the errors and worker counts anonymous callers do not see.
METRICS_TOKEN = "metrics-token-Xk29-long-random"
MONITOR = {"Authorization": f"Bearer {METRICS_TOKEN}"}
# What anyone may learn of a service: whether it answers, and how fast.
PUBLIC_FIELDS = {"status", "response_time", "response_time_ms"}


def health_of(app, headers: dict | None = None) -> tuple[int, dict]:
    """Status code and document of /api/v1/health, as the monitor (METRICS_TOKEN) sees it unless told otherwise."""
    response = app.test_client().get("/api/v1/health", headers=MONITOR if headers is None else headers)
    return response.status_code, response.get_json()

def health_on(settings):
    """Status code and document of /api/v1/health for an app on settings, as the monitor sees it."""
    return health_of(create_app(settings.model_copy(update={"metrics_token": METRICS_TOKEN})))


@pytest.fixture
def admin_headers(make_user, make_token):
    """An admin's API token, which shows health in detail."""
    return {"Authorization": f"Bearer {make_token(make_user(is_admin=True))}"}


def test_health_is_degraded_but_200_without_workers(client, admin_headers):
    response = client.get("/api/v1/health", headers=admin_headers)
    document = response.get_json()
    assert response.status_code == 200
    assert document["status"] == "degraded"
    assert document["services"]["workers"] == {**document["services"]["workers"], "status": "down", "count": 0}
    for name in ("database", "storage", "redis"):
        assert document["services"][name]["status"] == "up"
        assert document["services"][name]["response_time"].endswith("ms")
    assert document["version"] and document["uptime"]
    assert response.headers["Cache-Control"] == "no-store"


def test_health_is_healthy_with_a_running_worker(client, admin_headers, settings, redis, tmp_path):
    with worker_pool(settings, tmp_path / "worker.log"):
        wait_until(lambda: idle_workers(redis) == 1, 60, "a worker to wait for work")
        response = client.get("/api/v1/health", headers=admin_headers)
    assert response.status_code == 200
    assert response.get_json()["status"] == "healthy"
    assert response.get_json()["services"]["workers"]["count"] == 1


@pytest.mark.parametrize("service, override", [
    ("database", lambda port: {"database_url": f"postgresql://postgres@127.0.0.1:{port}/nothing"}),
    ("redis", lambda port: {"redis_url": f"redis://127.0.0.1:{port}/0"}),
    ("storage", lambda port: {"minio_endpoint": f"127.0.0.1:{port}", "minio_user": "u", "minio_password": "p"}),
])
def test_health_is_503_when_a_required_service_is_unreachable(tmp_path, postgres_database_url, redis_url,
                                                              service, override):
    values = {"database_url": postgres_database_url, "redis_url": redis_url, **override(free_port())}
    settings = make_settings(tmp_path, **values)
    status, document = health_on(settings)
    assert status == 503
    assert document["status"] == "unhealthy"
    assert document["services"][service]["status"] == "down"
    assert document["services"][service]["error"]
    others = {"database", "storage", "redis"} - {service}
    assert all(document["services"][name]["status"] == "up" for name in others)


def test_health_is_503_when_the_sqlite_file_cannot_be_opened(tmp_path, redis_url):
    folder = tmp_path / "db"
    client = create_app(make_settings(tmp_path, f"sqlite:///{folder / 'studio.db'}", redis_url)).test_client()
    folder.rmdir()
    folder.write_text("a file where the database folder was")
    response = client.get("/api/v1/health")
    assert response.status_code == 503
    assert response.get_json()["services"]["database"]["status"] == "down"


def test_health_error_never_shows_the_database_password(tmp_path, redis_url):
    port = free_port()
    settings = make_settings(tmp_path, f"postgresql://studio:s3cret-pw@127.0.0.1:{port}/x", redis_url)
    status, document = health_on(settings)
    assert status == 503
    assert "s3cret-pw" not in str(document)


def test_liveness_answers_even_when_the_database_is_down(tmp_path, redis_url):
    settings = make_settings(tmp_path, f"postgresql://postgres@127.0.0.1:{free_port()}/x", redis_url)
    client = create_app(settings).test_client()
    assert client.get("/api/v1/health/live").get_json()["status"] == "alive"
    assert client.get("/api/v1/health").status_code == 503


def test_pages_say_service_unavailable_when_the_database_is_down(tmp_path, redis_url):
    settings = make_settings(tmp_path, f"postgresql://postgres@127.0.0.1:{free_port()}/x", redis_url)
    response = create_app(settings).test_client().get("/api/v1/jobs")
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "service_unavailable"


def test_health_on_postgresql_and_s3_is_healthy_with_a_worker(s3_settings, redis, tmp_path):
    client = create_app(s3_settings).test_client()
    with worker_pool(s3_settings, tmp_path / "worker.log"):
        wait_until(lambda: idle_workers(redis) == 1, 60, "a worker to wait for work")
        response = client.get("/api/v1/health")
    document = response.get_json()
    assert response.status_code == 200 and document["status"] == "healthy", document


def test_health_is_503_when_the_s3_credentials_are_wrong(tmp_path, postgres_database_url, redis_url, seaweed):
    settings = make_settings(tmp_path, postgres_database_url, redis_url, minio_endpoint=seaweed.endpoint,
                             minio_user=seaweed.access_key, minio_password="wrong-secret")
    status, document = health_on(settings)
    assert status == 503 and document["services"]["storage"]["status"] == "down"
    assert "wrong-secret" not in str(document)


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


def test_health_reports_how_many_jobs_wait_in_each_queue(make_app):
    app = make_app(metrics_token=METRICS_TOKEN)
    with app.app_context():
        get_queue("default").enqueue("workers.tasks.probe")
        get_queue("default").enqueue("workers.tasks.probe")
        get_queue("exports").enqueue("workers.tasks.probe")
    status, document = health_of(app)
    assert status == 200  # the playground's worker's queues too
    assert document["services"]["redis"]["queues"] == {"default": 2, "training-local": 0, "playground": 0,
                                                       "exports": 1}


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
    assert details["redis"]["queues"] == {"default": 0, "training-local": 0, "playground": 0, "exports": 0}
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
