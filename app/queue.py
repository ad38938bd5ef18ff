"""Redis and the RQ queues the Studio puts work on."""
from __future__ import annotations

from flask import Flask, current_app
from redis import Redis
from rq import Queue

from app.logs import current_request_id

DEFAULT_QUEUE = "default"
# Long local training runs go to their own queue so short steps never wait behind them.
TRAINING_LOCAL_QUEUE = "training-local"
QUEUES = (DEFAULT_QUEUE, TRAINING_LOCAL_QUEUE)


def redis_client(url: str, *, blocking: bool = False) -> Redis:
    """A client for url; blocking clients (workers) get no read timeout, since they wait on BLPOP."""
    return Redis.from_url(
        url,
        socket_connect_timeout=3,
        socket_timeout=None if blocking else 10,
        health_check_interval=30,
    )


def init_app(app: Flask) -> None:
    """Create the app's Redis client; redis-py reconnects by itself after a fork."""
    app.extensions["redis"] = redis_client(app.extensions["settings"].redis_url)


def get_redis() -> Redis:
    """The Redis client of the current app."""
    return current_app.extensions["redis"]


def get_queue(name: str = DEFAULT_QUEUE) -> Queue:
    """The RQ queue called name."""
    return Queue(name, connection=get_redis())


def enqueue(task: str, *args, queue: str = DEFAULT_QUEUE, **options):
    """Enqueue the task function named by its dotted path; options go to RQ (job_id, job_timeout…)."""
    # The job's log lines then carry the id of the request that started it.
    options["meta"] = {"request_id": current_request_id(), **options.get("meta", {})}
    return get_queue(queue).enqueue(task, *args, **options)
