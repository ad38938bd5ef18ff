"""Standard library only: the wall-clock budget of one run, such as a Kaggle session's time less a margin.

When the budget is spent the run's stop event is set, exactly as SIGTERM sets it: the loop finishes the step it
is in (at least one step per start, so a run always advances), saves a checkpoint and exits with
EXIT_INTERRUPTED; whoever started it resumes it from that checkpoint, in a new session.
"""
from __future__ import annotations

import threading


def watch(seconds: float | None, stop: threading.Event) -> threading.Timer | None:
    """Set stop once seconds have passed from now; None when there is no budget."""
    if not seconds:
        return None
    timer = threading.Timer(seconds, stop.set)
    timer.daemon = True  # a run that finishes first must not wait for it
    timer.start()
    return timer
