"""Wait for real conditions, never for a fixed time."""
from __future__ import annotations

import time
from collections.abc import Callable

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
