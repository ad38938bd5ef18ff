"""Playground completions on the tiny model: first-token latency and tokens per second, warm against cold.

The app runs in-process (Flask's test client) on SQLite, a local object folder and the local Redis; a real
`python -m workers --playground` generates. Cold: the worker keeps nothing (PLAYGROUND_WARM_SECONDS=0), so each
completion loads base + adapter first; warm: the model stays loaded. First token is timed by the worker from the
moment it takes the completion; tokens per second over the whole request, from POST to the finished answer.
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from app.auth import service as accounts  # noqa: E402
from app.db import database, upgrade  # noqa: E402
from app.extensions import get_store  # noqa: E402
from app.factory import create_app  # noqa: E402
from app.settings import Settings  # noqa: E402
from tests.support.playground import job_with_adapter, playground_worker  # noqa: E402
from tests.support.waiting import wait_until  # noqa: E402

ROUNDS = 5
MAX_TOKENS = 64
REDIS_URL = "redis://127.0.0.1:6379/13"


def prepare(work: Path, warm_seconds: int):
    """The app with a user, a token and a succeeded job holding a real adapter."""
    settings = Settings(studio_env="test", secret_key="b" * 40, data_dir=work, redis_url=REDIS_URL,
                        rate_limits_enabled=False, log_level="WARNING", playground_warm_seconds=warm_seconds)
    app = create_app(settings)
    upgrade()
    with app.app_context(), database.connection_context():
        owner = accounts.create_user("bench@example.com", "bench password 123")
        token = accounts.create_token(owner, "bench")[1]
        job = job_with_adapter(owner, get_store(), work / "adapter")
    return settings, app.test_client(), {"Authorization": f"Bearer {token}"}, job.id


def one_completion(client, headers, job_id: int) -> tuple[float, float]:
    """(first-token seconds, tokens per second) of one completion."""
    body = {"messages": [{"role": "user", "content": "Tell me a story."}], "max_tokens": MAX_TOKENS}
    started = time.perf_counter()
    url = client.post(f"/api/v1/jobs/{job_id}/completions", headers=headers, json=body).get_json()["url"]
    done = wait_until(lambda: (state := client.get(url, headers=headers).get_json())["status"]
                      in ("succeeded", "failed") and state, 120, "the completion")
    if done["status"] != "succeeded":
        raise RuntimeError(done["error"])
    return done["first_token_seconds"], done["tokens"] / (time.perf_counter() - started)


def measure(warm_seconds: int) -> list[tuple[float, float]]:
    """ROUNDS completions on a fresh worker keeping models warm_seconds."""
    with tempfile.TemporaryDirectory(prefix="bench-playground-") as folder:
        settings, client, headers, job_id = prepare(Path(folder), warm_seconds)
        client.application.extensions["redis"].flushdb()
        with playground_worker(settings, Path(folder) / "worker.log"):
            one_completion(client, headers, job_id)  # the worker's own start (imports) is no model load
            results = [one_completion(client, headers, job_id) for _ in range(ROUNDS)]
        client.application.extensions["redis"].flushdb()
    return results


def main() -> None:
    """Cold, then warm, and the table."""
    cold, warm = measure(0), measure(600)
    first = {name: statistics.median(r[0] for r in rows) for name, rows in (("cold", cold), ("warm", warm))}
    speed = {name: statistics.median(r[1] for r in rows) for name, rows in (("cold", cold), ("warm", warm))}
    print(f"\nPlayground completions — tiny model, {MAX_TOKENS} tokens, median of {ROUNDS}")
    print(f"{'measurement':44} {'value':>12} {'ratio':>7}")
    print(f"{'first token, cold (loads base + adapter)':44} {first['cold'] * 1000:9.1f} ms {1:7.2f}")
    print(f"{'first token, warm':44} {first['warm'] * 1000:9.1f} ms {first['warm'] / first['cold']:7.2f}")
    print(f"{'tokens/s, POST to answer, cold':44} {speed['cold']:8.1f} t/s {1:7.2f}")
    print(f"{'tokens/s, POST to answer, warm':44} {speed['warm']:8.1f} t/s {speed['warm'] / speed['cold']:7.2f}")


if __name__ == "__main__":
    main()
