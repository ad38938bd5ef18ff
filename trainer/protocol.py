"""The progress protocol between the training program and the Studio: `@@studio {json}` lines on stdout.

Standard library only: the Studio imports it to read the lines, and the Kaggle bootstrap to write its own.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

PROGRESS_PREFIX = "@@studio "
EVENT_TYPES = ("start", "progress", "eval", "checkpoint", "done", "error")
PROGRESS_KEYS = ("step", "total_steps", "epoch", "loss", "eval_loss", "learning_rate", "tokens_per_second",
                 "eta_seconds")
# What a preference run (DPO, ORPO) adds: to its progress lines, and to its evaluations.
PREFERENCE_KEYS = ("rewards_chosen", "rewards_rejected", "reward_margin", "reward_accuracy")
PREFERENCE_EVAL_KEYS = ("eval_reward_margin", "eval_reward_accuracy")
# The exit status of a run stopped by SIGTERM after saving a checkpoint: whoever stopped it may resume it.
EXIT_INTERRUPTED = 75


def parse_progress_line(line: str) -> dict | None:
    """The event of a `@@studio {json}` line (the prefix may follow a log timestamp), or None for any other line."""
    start = line.find(PROGRESS_PREFIX)
    if start < 0:
        return None
    try:
        event = json.loads(line[start + len(PROGRESS_PREFIX):])
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("type") not in EVENT_TYPES:
        return None
    return event


def finite_or_none(value):
    """value, unless it is a float JSON cannot carry (NaN or infinity)."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


class Reporter:
    """Prints protocol lines on stdout, flushed, and appends them to progress.jsonl in the output folder."""

    def __init__(self, log_path: Path | None = None):
        """Report on stdout, and into log_path when given."""
        self.log_path = log_path

    def emit(self, event_type: str, **values) -> dict:
        """Report one event; every line carries all the protocol keys, null where unknown."""
        event = {"type": event_type, **dict.fromkeys(PROGRESS_KEYS), **values}
        event = {key: finite_or_none(value) for key, value in event.items()}
        text = json.dumps(event, allow_nan=False)
        print(PROGRESS_PREFIX + text, flush=True)
        if self.log_path is not None and self.log_path.parent.is_dir():
            with self.log_path.open("a") as log:
                log.write(text + "\n")
        return event


def print_error(message: str) -> dict:
    """Print an error event on stdout only: the line the Studio shows when something fails outside a run."""
    return Reporter().emit("error", message=message)
