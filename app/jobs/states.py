"""Job states and the moves between them."""
from __future__ import annotations

QUEUED, PREPARING, RUNNING = "queued", "preparing", "running"
SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"

ALL = (QUEUED, PREPARING, RUNNING, SUCCEEDED, FAILED, CANCELLED)
ACTIVE = (QUEUED, PREPARING, RUNNING)
TERMINAL = (SUCCEEDED, FAILED, CANCELLED)

# Anything active may fail or be cancelled; otherwise a job only moves forward.
ALLOWED = {
    QUEUED: {PREPARING, FAILED, CANCELLED},
    PREPARING: {RUNNING, FAILED, CANCELLED},
    RUNNING: {SUCCEEDED, FAILED, CANCELLED},
}


def can_move(current: str, target: str) -> bool:
    """Whether a job in state current may move to target."""
    return target in ALLOWED.get(current, ())
