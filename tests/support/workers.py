"""The Studio's worker pool (`python -m workers`) as a child process of a test, and what it registers in Redis."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.processes import running
from tests.support.settings import settings_env


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
