"""Run programs in process groups of their own, stop them the one way, or kill them as a power loss would."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from tests.support.waiting import POLL_INTERVAL

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# How long a group gets to exit on its own after SIGTERM before what is left of it is SIGKILLed.
STOP_SECONDS = 30.0


@dataclass(frozen=True)
class Stopped:
    """How a process group ended after SIGTERM."""

    returncode: int
    seconds: float  # from the signal until the whole group was gone
    killed: bool  # something of the group was still there after the timeout and got SIGKILL


@contextmanager
def running(args: list[str], env: dict[str, str], log_path: Path, cwd: Path = PROJECT_ROOT,
            stop_timeout: float = STOP_SECONDS) -> Iterator[subprocess.Popen]:
    """Run args in a session of its own, output to log_path; on exit stop its whole group with stop_group."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            yield process
        finally:
            stop_group(process, stop_timeout)


def stop_group(process: subprocess.Popen, timeout: float = STOP_SECONDS, leader_only: bool = False) -> Stopped:
    """SIGTERM the group of process (only its leader when leader_only, as `docker stop` tells only PID 1),
    wait up to timeout for every member to be gone, then SIGKILL what is left."""
    signalled = time.monotonic()
    send_sigterm(process, leader_only)
    return wait_stopped(process, timeout, signalled)


def send_sigterm(process: subprocess.Popen, leader_only: bool = False) -> None:
    """SIGTERM the group of process, or only its leader; nothing when they are gone already."""
    with suppress(ProcessLookupError):
        if leader_only:
            process.send_signal(signal.SIGTERM)  # never to a reused pid: it checks the leader was not reaped
        else:
            os.killpg(process.pid, signal.SIGTERM)


def wait_stopped(process: subprocess.Popen, timeout: float, since: float | None = None) -> Stopped:
    """Wait up to timeout for process and every member of its group to be gone, then SIGKILL what is left."""
    since = time.monotonic() if since is None else since
    deadline = since + timeout
    while (process.poll() is None or group_alive(process.pid)) and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL)
    killed = process.poll() is None or group_alive(process.pid)
    if killed:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return Stopped(process.returncode, time.monotonic() - since, killed)


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


def descendants(pid: int) -> list[int]:
    """Every process below pid, whatever session it started (RQ's work horses, training programs)."""
    children = []
    with suppress(FileNotFoundError, ProcessLookupError):  # pid may have ended meanwhile
        for task in Path(f"/proc/{pid}/task").iterdir():
            with suppress(FileNotFoundError, ProcessLookupError):
                children += [int(child) for child in (task / "children").read_text().split()]
    return children + [grandchild for child in children for grandchild in descendants(child)]


def kill_tree(pid: int) -> None:
    """SIGKILL pid and everything below it at once: a machine losing power, as far as they can tell."""
    for victim in [pid, *descendants(pid)]:
        with suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
