"""Run the web app as in production (gunicorn with gunicorn.conf.py, optionally behind nginx) and talk HTTP to it."""
from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import free_port, running, settings_env, wait_until

NGINX_CONFIG = """
{user}
worker_processes 1;
pid {folder}/nginx.pid;
error_log stderr warn;
daemon off;
events {{ worker_connections 128; }}
http {{
    access_log off;
    client_body_temp_path {folder}/client_body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 64m;
        location / {{
            # The same forwarding headers as nginx/templates.
            proxy_pass http://127.0.0.1:{upstream};
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


@dataclass
class Reply:
    """What the server answered."""

    status: int
    headers: dict[str, str]
    body: bytes


def fetch(base_url: str, path: str, method: str = "GET", headers: dict | None = None, body: bytes | None = None,
          source: str | None = None) -> Reply:
    """One request on a fresh connection (so gunicorn may hand it to any worker), from source address if given."""
    host, port = base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30,
                                            source_address=(source, 0) if source else None)
    try:
        # The server may answer (a 413) before reading the whole body; its answer is still there to read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def fetch_many(base_url: str, requests: list[dict], parallel: int = 8) -> list[Reply]:
    """Send the requests (keyword arguments of fetch) concurrently; their replies in the same order."""
    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(lambda kwargs: fetch(base_url, **kwargs), requests))


def statuses(replies: list[Reply]) -> dict[int, int]:
    """How many replies had each status."""
    counts: dict[int, int] = {}
    for reply in replies:
        counts[reply.status] = counts.get(reply.status, 0) + 1
    return counts


@contextmanager
def gunicorn_server(settings, log_path: Path, workers: int = 2, **environment) -> Iterator[str]:
    """gunicorn with gunicorn.conf.py and `workers` processes on the settings; yields its base URL."""
    port = free_port()
    env = settings_env(settings) | {"WEB_CONCURRENCY": str(workers)}
    env |= {name.upper(): str(value) for name, value in environment.items()}
    args = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "wsgi:app"]
    with running(args, env, log_path) as process:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: process.poll() is not None or _answers(url), 60, f"gunicorn to answer ({log_path})")
        assert process.poll() is None, log_path.read_text()
        wait_until(lambda: log_path.read_text().count("Worker ready") >= workers, 60, "every worker to load the app")
        yield url


def _answers(url: str) -> bool:
    """Whether the server at url answers its liveness probe."""
    try:
        return fetch(url, "/api/v1/health/live").status == 200
    except OSError:
        return False


def nginx_binary() -> str:
    """The nginx executable (Debian keeps it in /usr/sbin, outside a user's PATH)."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    assert found, "nginx is not installed; `make test` installs it (Debian: apt-get install nginx)"
    return found


@contextmanager
def nginx_proxy(upstream_url: str, folder: Path) -> Iterator[str]:
    """nginx in front of upstream_url, forwarding like the production proxy; yields its base URL."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    # A root master hands requests to `nobody` workers, which could not enter a private temp folder.
    user = "user root;" if os.geteuid() == 0 else ""
    config = NGINX_CONFIG.format(user=user, folder=folder, port=port, upstream=upstream_url.rsplit(":", 1)[1])
    (folder / "nginx.conf").write_text(config)
    args = [nginx_binary(), "-p", str(folder), "-c", str(folder / "nginx.conf")]
    with running(args, dict(os.environ), folder / "nginx.log") as process:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: process.poll() is not None or _answers(url), 30, "nginx to answer")
        assert process.poll() is None, (folder / "nginx.log").read_text()
        yield url
