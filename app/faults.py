"""Fault injection for the fault drill: named points in the job lifecycle where a test can make the worker die,
and points where a test can make it wait.

`STUDIO_FAULTS` (tests only, never set in production) lists points, e.g. `submit.pushed,collect.stored`; the
first time a process passes a listed point it SIGKILLs its session's first process group and its own — the
worker pool runs in a session of its own, and an RQ work horse in a group of its own inside it — as a power cut
would. `STUDIO_FAULTS_DIR` records the points that
fired (a file each), so a restarted pool runs on through them. Unset, hit() costs one dictionary lookup.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

ENVIRONMENT = "STUDIO_FAULTS"
FIRED_DIR = "STUDIO_FAULTS_DIR"
# Points where a process waits (tests only, never set in production): `STUDIO_HOLDS` lists them; the first time
# a process passes one it waits, at most HOLD_SECONDS, for the test to push to the point's Redis list
# (release()), so that a test sees a state that would otherwise last too short a time to look at.
HOLDS = "STUDIO_HOLDS"
HOLD_SECONDS = 120
_held: set[str] = set()


def armed(variable: str = ENVIRONMENT) -> set[str]:
    """The points the environment variable lists: where this process was asked to die (or, HOLDS, to wait)."""
    return {point.strip() for point in os.environ.get(variable, "").split(",") if point.strip()}


def hit(point: str) -> None:
    """Die here (the session's process groups, SIGKILL) if point is armed and has not fired yet."""
    if point not in armed():
        return
    folder = Path(os.environ.get(FIRED_DIR) or ".")
    marker = folder / f"{point}.fired"
    try:
        marker.touch(exist_ok=False)
    except FileExistsError:
        return
    own = os.getpgid(0)
    if os.getsid(0) != own:
        os.killpg(os.getsid(0), signal.SIGKILL)
    os.killpg(own, signal.SIGKILL)


def hold_key(point: str) -> str:
    """The Redis list a held point waits on."""
    return f"studio:hold:{point}"


def hold(point: str, redis) -> None:
    """Wait here, the first time this process passes point, until release(point) (if STUDIO_HOLDS lists it)."""
    if point in _held or point not in armed(HOLDS):
        return
    _held.add(point)
    redis.blpop([hold_key(point)], timeout=HOLD_SECONDS)


def release(point: str, redis) -> None:
    """Let a process waiting at point go on."""
    redis.rpush(hold_key(point), 1)
