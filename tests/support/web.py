"""The web app as production runs it: gunicorn with gunicorn.conf.py, optionally behind the production nginx site."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.http import status_of
from tests.support.ports import free_port
from tests.support.processes import PROJECT_ROOT, running
from tests.support.settings import settings_env
from tests.support.waiting import wait_until

LIVENESS = "/api/v1/health/live"
START_SECONDS = 60


@dataclass(frozen=True)
class Server:
    """A running gunicorn: its base URL, master process and log."""

    url: str
    process: subprocess.Popen
    log_path: Path

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.url.rsplit(":", 1)[1])

    @property
    def pid(self) -> int:
        """The pid of the master process."""
        return self.process.pid


def gunicorn_command(port: int) -> list[str]:
    """The production command line (the image's CMD) on loopback port."""
    return [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "wsgi:app"]


@contextmanager
def gunicorn(settings, log_path: Path, workers: int = 2, **environment) -> Iterator[Server]:
    """The app under gunicorn.conf.py with `workers` processes on the settings (environment: more variables,
    e.g. rate_limit_global="5/minute"); yields once every worker has loaded the app."""
    port = free_port()
    env = settings_env(settings) | {"WEB_CONCURRENCY": str(workers)}
    env |= {name.upper(): str(value) for name, value in environment.items()}
    # One metrics folder per server, so that two never mix their counts. It must exist before gunicorn.conf.py
    # loads the app (prometheus_client opens its files on import); on_starting then empties it.
    metrics_dir = Path(env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(log_path.parent / f"metrics-{port}")))
    metrics_dir.mkdir(parents=True, exist_ok=True)
    with running(gunicorn_command(port), env, log_path) as process:
        server = Server(f"http://127.0.0.1:{port}", process, log_path)
        wait_until(lambda: process.poll() is not None or status_of(server.url, LIVENESS) == 200, START_SECONDS,
                   f"gunicorn to answer ({log_path})")
        assert process.poll() is None, log_path.read_text()
        wait_until(lambda: log_path.read_text().count("Worker ready") >= workers, START_SECONDS,
                   "every worker to load the app")
        yield server


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


@dataclass
class Site:
    """Where the production nginx listens: plain HTTP always, HTTPS when a certificate was given."""

    url: str
    https_url: str | None
    folder: Path

    def log_lines(self) -> list[str]:
        """What nginx wrote (its JSON access lines and its errors)."""
        return (self.folder / "nginx.log").read_text().splitlines()


def nginx_binary() -> str:
    """The nginx executable (Debian keeps it in /usr/sbin, outside a user's PATH)."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    assert found, "nginx is not installed; `make test` installs it (Debian: apt-get install nginx)"
    return found


def render_site(folder: Path, upstream: str, **variables: str) -> dict[str, str]:
    """Run nginx/studio-site.sh (as the container does at start) into folder; the environment it got."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ["PATH"], "NGINX_ROOT": str(folder),
           "STUDIO_TEMPLATES": str(PROJECT_ROOT / "nginx/templates"), "NGINX_UPSTREAM": upstream,
           "NGINX_STATIC_ROOT": str(PROJECT_ROOT),
           "NGINX_ACME_ROOT": str(folder / "acme"), "NGINX_HTTP_LISTEN": f"127.0.0.1:{free_port()}", **variables}
    subprocess.run(["sh", str(PROJECT_ROOT / "nginx/studio-site.sh")], env=env, check=True, capture_output=True,
                   timeout=30)
    # A root master hands requests to `nobody` workers, which could not enter a private temp folder.
    user = "user root;" if os.geteuid() == 0 else ""
    (folder / "nginx.conf").write_text(MAIN_CONFIG.format(user=user, folder=folder))
    return env


def nginx_test_config(folder: Path) -> subprocess.CompletedProcess:
    """`nginx -t` on the configuration rendered into folder."""
    return subprocess.run([nginx_binary(), "-t", "-p", str(folder), "-c", str(folder / "nginx.conf")],
                          capture_output=True, text=True, timeout=30)


@contextmanager
def production_nginx(upstream_url: str, folder: Path, **variables: str) -> Iterator[Site]:
    """The production nginx site on loopback in front of upstream_url, forwarding as in the container."""
    if "NGINX_CERT_DIR" in variables:
        variables.setdefault("NGINX_HTTPS_LISTEN", f"127.0.0.1:{free_port()}")
    env = render_site(folder, upstream_url.removeprefix("http://"), **variables)
    site = Site("http://" + env["NGINX_HTTP_LISTEN"],
                "https://" + env["NGINX_HTTPS_LISTEN"] if "NGINX_HTTPS_LISTEN" in env else None, folder)
    with running([nginx_binary(), "-p", str(folder), "-c", str(folder / "nginx.conf")], dict(os.environ),
                 folder / "nginx.log") as process:
        wait_until(lambda: process.poll() is not None or status_of(site.url, "/nginx-health") == 200, 30,
                   "nginx to answer")
        assert process.poll() is None, (folder / "nginx.log").read_text()
        yield site


def self_signed_certificate(folder: Path) -> Path:
    """A throwaway certificate for 127.0.0.1, laid out as Let's Encrypt lays out a live certificate."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(folder / "privkey.pem"), "-out", str(folder / "fullchain.pem"), "-days", "1",
                    "-subj", "/CN=127.0.0.1"], check=True, capture_output=True, timeout=30)
    return folder
