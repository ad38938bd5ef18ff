"""Health: every service checked for real; 503 when a required one is down, degraded without workers."""
from __future__ import annotations

import pytest

from app.factory import create_app
from tests.conftest import make_settings
from tests.support.processes import free_port, idle_workers, wait_until, worker_pool

# The monitor's token: with it, health shows the errors and worker counts anonymous callers do not see.
METRICS_TOKEN = "metrics-token-Xk29-long-random"
MONITOR = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def health_of(settings):
    """Status code and document of /api/v1/health for an app on settings, as the monitor sees it."""
    app = create_app(settings.model_copy(update={"metrics_token": METRICS_TOKEN}))
    response = app.test_client().get("/api/v1/health", headers=MONITOR)
    return response.status_code, response.get_json()


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
    status, document = health_of(settings)
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
    status, document = health_of(settings)
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
    status, document = health_of(settings)
    assert status == 503 and document["services"]["storage"]["status"] == "down"
    assert "wrong-secret" not in str(document)
