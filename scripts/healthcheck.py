"""Container health checks: `python -m scripts.healthcheck web|worker` exits 0 when healthy, 1 otherwise.

Kept free of the app's imports so a check every few seconds costs little: the web check asks this
container's gunicorn for its liveness probe; the worker check looks in Redis for an RQ worker of this host.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import urllib.request

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def web_is_live(port: int, timeout: float = 4.0) -> bool:
    """Whether the web process on this host answers /api/v1/health/live with 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health/live", timeout=timeout) as response:
            return response.status == 200
    except OSError as error:
        print(f"web: {error}", file=sys.stderr)
        return False


def worker_is_registered(redis_url: str, hostname: str) -> bool:
    """Whether an RQ worker of hostname is registered in Redis (a live pool re-registers every few seconds)."""
    from redis import Redis
    from redis.exceptions import RedisError
    from rq import Worker

    try:
        with Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=3) as redis:
            return any(worker.hostname == hostname for worker in Worker.all(connection=redis))
    except RedisError as error:
        print(f"worker: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}", file=sys.stderr)
        return False


def main(argv: list[str] | None = None) -> int:
    """Run the chosen check; 0 when healthy."""
    parser = argparse.ArgumentParser(prog="python -m scripts.healthcheck", description=__doc__.splitlines()[0])
    parser.add_argument("process", choices=["web", "worker"])
    args = parser.parse_args(argv)
    if args.process == "web":
        healthy = web_is_live(int(os.environ.get("PORT") or 8000))
    else:
        healthy = worker_is_registered(os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL, socket.gethostname())
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
