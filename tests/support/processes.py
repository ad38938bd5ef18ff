"""Run the Studio's own processes (workers, dev command) from tests and wait on real conditions."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import NamedTuple

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
    """The environment that makes a child process read exactly the settings of a test app."""
    env = {key: value for key, value in os.environ.items() if key.upper() not in _setting_names(settings)}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is not None:
            env[name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _setting_names(settings) -> set[str]:
    """The environment variables the settings read."""
    return {name.upper() for name in type(settings).model_fields}


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
def worker_pool(settings, log_path: Path, pool_size: int = 1, extra_env: dict | None = None
                ) -> Iterator[subprocess.Popen]:
    """`python -m workers` on the settings' Redis and database, until the context ends."""
    args = [sys.executable, "-m", "workers", "--pool-size", str(pool_size)]
    with running(args, {**settings_env(settings), **(extra_env or {})}, log_path) as process:
        yield process


def idle_workers(redis) -> int:
    """How many RQ workers wait for work: registered, with their signal handlers installed."""
    from rq import Worker

    return sum(1 for worker in Worker.all(connection=redis) if worker.get_state() == "idle")


class Served(NamedTuple):
    """Where a server listens and the pid of its master process."""

    port: int
    pid: int


@contextmanager
def gunicorn(settings, log_path: Path, workers: int = 2) -> Iterator[Served]:
    """The app served by real gunicorn on a free port, once it answers."""
    import urllib.request

    port = free_port()
    args = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "wsgi:app"]

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health/live", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    with running(args, settings_env(settings), log_path) as process:
        wait_until(lambda: answers() or process.poll() is not None, 60, "gunicorn to answer")
        assert process.poll() is None, log_path.read_text()
        yield Served(port, process.pid)


def descendants(pid: int) -> list[int]:
    """Every process below pid, whatever session it started (RQ's work horses, training programs)."""
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(child) for child in (task / "children").read_text().split()]
    return children + [grandchild for child in children for grandchild in descendants(child)]


def kill_tree(pid: int) -> None:
    """SIGKILL pid and everything below it at once: a machine losing power, as far as they can tell."""
    for victim in [pid, *descendants(pid)]:
        with suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
