"""Redis and the RQ queues the Studio puts work on; no Flask here (extensions.py gives the app's client)."""
from __future__ import annotations

from redis import Redis

DEFAULT_QUEUE = "default"
# Long local training runs go to their own queue so short steps never wait behind them.
TRAINING_LOCAL_QUEUE = "training-local"
QUEUES = (DEFAULT_QUEUE, TRAINING_LOCAL_QUEUE)
# The playground's completions, served by its own worker (python -m workers --playground), which keeps models loaded.
PLAYGROUND_QUEUE = "playground"
# Exports load and merge a model: they need the training stack, which the slim worker image lacks, so the
# playground's worker (which has it, and loads models anyway) serves them after its completions.
EXPORTS_QUEUE = "exports"


def watched_queues(worker_queues: list[str]) -> list[str]:
    """The queues whose depth health and metrics report: the workers' (WORKER_QUEUES), then the playground's
    worker's."""
    return list(dict.fromkeys([*worker_queues, PLAYGROUND_QUEUE, EXPORTS_QUEUE]))
# How often a busy worker heartbeats (RQ's job_monitoring_interval; its default is 30 s): a step whose worker
# stopped heartbeating for a few of these died with it, and the reconciler runs it again that much sooner.
WORKER_HEARTBEAT_SECONDS = 5


def redis_client(url: str, *, blocking: bool = False) -> Redis:
    """A client for url; blocking clients (workers) get no read timeout, since they wait on BLPOP."""
    return Redis.from_url(
        url,
        socket_connect_timeout=3,
        socket_timeout=None if blocking else 10,
        health_check_interval=30,
    )


def init_app(app) -> None:
    """Create the app's Redis client; redis-py reconnects by itself after a fork."""
    app.extensions["redis"] = redis_client(app.extensions["settings"].redis_url)
