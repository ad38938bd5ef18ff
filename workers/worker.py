"""The RQ worker class: each job runs inside the app context with its own database connection."""
from __future__ import annotations

import contextlib
import os
import signal
import time

import peewee
from redis.exceptions import RedisError
from rq import SimpleWorker, Worker

from app.counters import record_job_step
from app.db import database
from app.factory import create_app
from app.jobs import reconciler
from app.jobs.backends.local import HANDBACK_SIGNAL
from app.jobs.context import JobContext
from app.logs import job_context
from app.queue import WORKER_HEARTBEAT_SECONDS

# How long a worker blocks waiting for work. A stop signal delivered to one of RQ's helper threads
# is only acted on when the main thread wakes up, so this bounds how long a shutdown can hang.
WAKE_UP_SECONDS = 5
# HANDBACK_SIGNAL is told to the work horse when the worker is asked to stop, so a long step (local training)
# can checkpoint and hand its job back instead of holding the shutdown for hours (app/jobs/backends/local.py).


class StudioWorker(Worker):
    """An RQ worker that builds the Studio app once per worker process."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("job_monitoring_interval", WORKER_HEARTBEAT_SECONDS)
        super().__init__(*args, **kwargs)
        # Built after the pool forked this process, so no client crosses a fork; create_app connects nothing.
        self.app = create_app()
        # RQ's maintenance (every 10 minutes by default) also runs the reconciler, at its own interval.
        self.maintenance_interval = self.app.extensions["settings"].reconcile_interval

    @property
    def dequeue_timeout(self) -> int:
        """Seconds of one blocking wait for work (RQ's default is several minutes)."""
        return WAKE_UP_SECONDS

    def perform_job(self, job, queue, execution) -> bool:
        """Run the job (in the work horse) in the app with its own connection; log its request id, count it."""
        started = time.perf_counter()
        with self.app.app_context(), database.connection_context(), job_context(job):
            succeeded = super().perform_job(job, queue, execution)
        record_job_step(self.connection, job.func_name, time.perf_counter() - started, succeeded)
        return succeeded

    def run_maintenance_tasks(self):
        """RQ's maintenance, then the reconciler's pass if no other worker took this one."""
        super().run_maintenance_tasks()
        try:
            with self.app.app_context(), database.connection_context():
                reconciler.reconcile_if_due(JobContext.from_app(self.app))
        except (RedisError, peewee.DatabaseError, peewee.InterfaceError):
            self.log.exception("the reconciler's pass failed; the next maintenance retries")

    def setup_work_horse_signals(self):
        """RQ's horse signals, plus: ignore the hand-back signal unless the running step listens for it."""
        super().setup_work_horse_signals()
        signal.signal(HANDBACK_SIGNAL, signal.SIG_IGN)

    def request_stop(self, signum, frame):
        """Warm shutdown: tell the running step first, then let RQ wait for it."""
        if self.horse_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.horse_pid, HANDBACK_SIGNAL)
        return super().request_stop(signum, frame)


class PlaygroundWorker(StudioWorker):
    """A Studio worker that runs each job in its own process (no work horse), so loaded models stay warm."""

    # SimpleWorker's, not the forking Worker's that StudioWorker inherits.
    execute_job = SimpleWorker.execute_job
    get_heartbeat_ttl = SimpleWorker.get_heartbeat_ttl
