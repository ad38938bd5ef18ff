"""Fault injection for the fault drill: named points in the job lifecycle where a test can make the worker die.

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


def armed() -> set[str]:
    """The fault points this process was asked to die at."""
    return {point.strip() for point in os.environ.get(ENVIRONMENT, "").split(",") if point.strip()}


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
