"""`make dev`'s script: serves the app with the embedded defaults and stops everything on SIGTERM."""
from __future__ import annotations

import json
import os
import uuid

from tests.support.http import fetch, status_of
from tests.support.ports import free_port
from tests.support.processes import group_alive, running, stop_group
from tests.support.waiting import wait_until


def healthy(base: str) -> bool:
    """Whether the app reports every service up."""
    try:
        reply = fetch(base, "/api/v1/health", timeout=5)
    except OSError:
        return False
    return reply.status == 200 and json.loads(reply.body)["status"] == "healthy"


def dev_environment(tmp_path) -> dict[str, str]:
    """The environment of a developer with nothing configured: free ports, no Redis running there."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DB_", "MINIO_", "DATABASE_", "SECRET_", "STUDIO_"))}
    env.update(PORT=str(free_port()), REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
               DATA_DIR=str(tmp_path / "data"), WORKER_POOL_SIZE="1")
    return env


def run_dev_until_healthy(env: dict[str, str], log_path):
    """Start the dev script, wait for a healthy stack, run the checks the caller yields, stop it."""
    base = f"http://127.0.0.1:{env['PORT']}"
    with running(["scripts/dev.sh"], env, log_path) as process:
        wait_until(lambda: healthy(base) or process.poll() is not None, 180, "the dev stack to be healthy")
        assert process.poll() is None, log_path.read_text()
        assert status_of(base, "/") == 302
        assert status_of(base, "/static/vendor/htmx.min.js") == 200
        assert "created admin admin@studio.local with password:" in log_path.read_text()
        stopped = stop_group(process)
    assert not stopped.killed, f"the dev script and what it started ignored SIGTERM for {stopped.seconds:.0f} s"
    assert not group_alive(process.pid), "a process started by the dev script outlived it"
    assert status_of(base, "/api/v1/health/live") is None


def test_dev_script_serves_the_studio_on_the_embedded_defaults_and_stops_everything(tmp_path):
    run_dev_until_healthy(dev_environment(tmp_path), tmp_path / "dev.log")
    assert (tmp_path / "data" / "studio.db").exists()
    assert (tmp_path / "data" / "objects").is_dir()


def test_dev_script_switches_to_postgresql_and_s3(tmp_path, empty_postgres_database, seaweed):
    env = dev_environment(tmp_path)
    env.update(DATABASE_URL=empty_postgres_database, MINIO_ENDPOINT=seaweed.endpoint,
               MINIO_USER=seaweed.access_key, MINIO_PASSWORD=seaweed.secret_key,
               MINIO_BUCKET=f"dev-{uuid.uuid4().hex[:12]}")
    run_dev_until_healthy(env, tmp_path / "dev.log")
    assert not (tmp_path / "data" / "studio.db").exists()
