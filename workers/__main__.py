"""`python -m workers`: run WORKER_POOL_SIZE RQ workers, with RQ's scheduler, until SIGINT/SIGTERM."""
from __future__ import annotations

import argparse
import logging

from rq import Queue
from rq.worker_pool import WorkerPool

from app import sweeper
from app.db import database
from app.factory import create_app
from app.jobs import reconciler
from app.jobs.context import JobContext
from app.logs import configure_logging
from app.queue import DEFAULT_QUEUE, EXPORTS_QUEUE, PLAYGROUND_QUEUE, redis_client
from app.settings import Settings
from workers.worker import PlaygroundWorker, StudioWorker


def parse_args(settings: Settings) -> argparse.Namespace:
    """Command-line options; defaults come from the settings."""
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__)
    parser.add_argument("--pool-size", type=int, default=settings.worker_pool_size,
                        help="worker processes (WORKER_POOL_SIZE)")
    parser.add_argument("--queues", default=",".join(settings.queue_names),
                        help="comma-separated queues in priority order (WORKER_QUEUES)")
    parser.add_argument("--burst", action="store_true", help="exit once the queues are empty")
    parser.add_argument("--playground", action="store_true",
                        help="one worker on the playground queue that keeps models loaded between completions, "
                             "and on the exports queue after it")
    return parser.parse_args()


def main() -> None:
    """Start the pool and block until it stops."""
    settings = Settings()
    args = parse_args(settings)
    configure_logging(settings)
    queues = [name.strip() for name in args.queues.split(",") if name.strip()]
    if args.playground:
        queues, args.pool_size = [PLAYGROUND_QUEUE, EXPORTS_QUEUE], 1
    pool = WorkerPool(queues, connection=redis_client(settings.redis_url, blocking=True), num_workers=args.pool_size,
                      worker_class=PlaygroundWorker if args.playground else StudioWorker)
    logging.getLogger(__name__).info("starting %d worker(s) on %s", args.pool_size, ", ".join(queues))
    if not args.burst and not args.playground:
        reconcile_at_start(settings)
        schedule_sweeps_at_start(settings)
    pool.start(burst=args.burst, logging_level=settings.log_level)


def reconcile_at_start(settings: Settings) -> None:
    """Recover lost work before serving; never fatal."""
    app = create_app(settings)
    try:
        with app.app_context(), database.connection_context():
            reconciler.reconcile(JobContext.from_app(app))
    except Exception:  # the database or Redis may still be starting; the next pass or restart retries
        logging.getLogger(__name__).exception("reconciling at start failed")


def schedule_sweeps_at_start(settings: Settings) -> None:
    """Have the pool sweep leftovers now, and daily (app/sweeper.py); never fatal."""
    try:
        sweeper.schedule_sweeps(Queue(DEFAULT_QUEUE, connection=redis_client(settings.redis_url)))
    except Exception:  # Redis may still be starting; the next start schedules them
        logging.getLogger(__name__).exception("scheduling the sweeps failed")


if __name__ == "__main__":
    main()
