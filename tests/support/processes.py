"""Run the Studio's own processes (workers, dev command) from tests and wait on real conditions."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
POLL_INTERVAL = 0.05


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Poll condition until it returns something truthy; fail the test with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(POLL_INTERVAL)


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings_env(settings) -> dict[str, str]:
    """The environment that makes a child process read the same settings as a test app."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DB_", "MINIO_", "DATABASE_"))}
    env.update({
        "STUDIO_ENV": settings.studio_env,
        "SECRET_KEY": settings.secret_key,
        "DATA_DIR": str(settings.data_dir),
        "DATABASE_URL": settings.resolved_database_url,
        "REDIS_URL": settings.redis_url,
        "WORKER_POOL_SIZE": str(settings.worker_pool_size),
        "PYTHONUNBUFFERED": "1",
    })
    if settings.uses_s3:
        env.update(MINIO_ENDPOINT=settings.minio_endpoint, MINIO_USER=settings.minio_user,
                   MINIO_PASSWORD=settings.minio_password, MINIO_BUCKET=settings.minio_bucket)
    return env


@contextmanager
def running(args: list[str], env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen]:
    """Run args in a session of its own; on exit SIGTERM the whole group and wait for it."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(args, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            yield process
        finally:
            stop_group(process)


def stop_group(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the process group of process, then SIGKILL what is left after timeout."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def group_alive(pgid: int) -> bool:
    """Whether any process of the group still exists (zombies aside)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return any(_in_group(pid, pgid) for pid in _all_pids())


def _all_pids() -> list[int]:
    """Every process id on the machine."""
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _in_group(pid: int, pgid: int) -> bool:
    """Whether pid is a live (non-zombie) member of process group pgid."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return fields[0] != "Z" and int(fields[2]) == pgid


@contextmanager
def worker_pool(settings, log_path: Path, pool_size: int = 1) -> Iterator[subprocess.Popen]:
    """`python -m workers` on the settings' Redis and database, until the context ends."""
    args = [sys.executable, "-m", "workers", "--pool-size", str(pool_size)]
    with running(args, settings_env(settings), log_path) as process:
        yield process


def idle_workers(redis) -> int:
    """How many RQ workers wait for work: registered, with their signal handlers installed."""
    from rq import Worker

    return sum(1 for worker in Worker.all(connection=redis) if worker.get_state() == "idle")
