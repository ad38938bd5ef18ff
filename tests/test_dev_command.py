"""`make dev`'s script: serves the app with the embedded defaults and stops everything on SIGTERM."""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import uuid

from tests.support.processes import free_port, group_alive, running, stop_group, wait_until


def fetch(url: str) -> tuple[int, bytes]:
    """Status and body of a GET, without following redirects; (0, b"") while nothing listens."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def healthy(base: str) -> bool:
    """Whether the app reports every service up."""
    status, body = fetch(f"{base}/api/v1/health")
    return status == 200 and json.loads(body)["status"] == "healthy"


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
        assert fetch(f"{base}/")[0] == 302
        assert fetch(f"{base}/static/vendor/htmx.min.js")[0] == 200
        assert "created admin admin@studio.local with password:" in log_path.read_text()
        stop_group(process)
    assert not group_alive(process.pid), "a process started by the dev script outlived it"
    assert fetch(f"{base}/api/v1/health/live")[0] == 0


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
