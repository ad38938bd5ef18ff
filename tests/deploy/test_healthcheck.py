"""scripts/healthcheck.py, the containers' health checks, against a real gunicorn and a real worker pool."""
from __future__ import annotations

import subprocess
import sys

from app.settings import PROJECT_ROOT
from tests.support.ports import free_port
from tests.support.settings import settings_env
from tests.support.waiting import wait_until
from tests.support.web import gunicorn
from tests.support.workers import worker_pool


def check(process: str, env: dict[str, str]) -> int:
    """The exit status of `python -m scripts.healthcheck process`."""
    return subprocess.run([sys.executable, "-m", "scripts.healthcheck", process], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, timeout=30).returncode


def test_web_check_passes_only_while_gunicorn_answers(settings, tmp_path):
    env = settings_env(settings)
    with gunicorn(settings, tmp_path / "web.log") as web:
        assert check("web", env | {"PORT": str(web.port)}) == 0
    assert check("web", env | {"PORT": str(free_port())}) == 1


def test_worker_check_passes_only_while_a_worker_of_this_host_is_registered(settings, redis, tmp_path):
    env = settings_env(settings)
    assert check("worker", env) == 1
    with worker_pool(settings, tmp_path / "worker.log"):
        wait_until(lambda: check("worker", env) == 0, 60, "the worker to register")
    assert check("worker", env | {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}) == 1
