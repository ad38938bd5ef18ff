"""Job start latency: from POST /api/v1/jobs to the job leaving `queued`, with an idle worker.

Next to it, in the same run, a bare RQ enqueue → start of an empty function on the same worker: the
Studio's own cost is the difference. The web side runs in-process (Flask's test client: no HTTP
server in the way), the worker is a real `python -m workers` on the default queue only, so jobs stop
at the training queue instead of training. SQLite, a local object folder and the local Redis.
"""
from __future__ import annotations

import datetime
import io
import json
import statistics
import sys
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from rq import Queue  # noqa: E402

from app.auth import service as accounts  # noqa: E402
from app.db import database, upgrade  # noqa: E402
from app.factory import create_app  # noqa: E402
from app.models import Job, JobEvent, utcnow  # noqa: E402
from app.settings import Settings  # noqa: E402
from tests.support.waiting import wait_until  # noqa: E402
from tests.support.workers import worker_pool  # noqa: E402

ROUNDS = 50
# Any importable function that does nothing will do; the worker imports it by name.
EMPTY_FUNCTION = "os.getpid"
REDIS_URL = "redis://127.0.0.1:6379/14"


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, int(round(fraction * len(ordered))) - 1)]


def rq_start_latencies(queue: Queue) -> list[float]:
    """Seconds from enqueue to start of an empty function, one at a time."""
    latencies = []
    for _ in range(ROUNDS):
        job = queue.enqueue(EMPTY_FUNCTION)
        wait_until(lambda j=job: j.get_status(refresh=True) == "finished", 30, "the empty job")
        job.refresh()
        latencies.append((job.started_at - job.enqueued_at).total_seconds())
    return latencies


def studio_start_latencies(app, client, headers: dict, dataset_id: int) -> list[float]:
    """Seconds from POST /api/v1/jobs to the job's `preparing` event, one at a time with an idle worker."""
    latencies = []
    body = {"dataset_id": dataset_id, "base_model": "tiny-random-llama", "backend": "local"}
    for _ in range(ROUNDS):
        posted = utcnow()
        job_id = client.post("/api/v1/jobs", headers=headers, json=body).get_json()["id"]
        with app.app_context():
            wait_until(lambda job=job_id: stage_of(job) == "run", 30, "the job to reach the training queue")
            started = first_status_event(job_id, "preparing")
        latencies.append((started - posted).total_seconds())
    return latencies


def stage_of(job_id: int) -> str:
    """The job's current stage, read fresh."""
    with database.connection_context():
        return Job.select(Job.stage).where(Job.id == job_id).scalar()


def first_status_event(job_id: int, status: str) -> datetime.datetime:
    """When the job moved to status."""
    with database.connection_context():
        return (JobEvent.select(JobEvent.created_at).where((JobEvent.job == job_id) & (JobEvent.kind == "status")
                                                           & (JobEvent.message == status)).scalar())


def prepare_app(work: Path):
    """The app on SQLite with a user, a token and a ready dataset."""
    settings = Settings(studio_env="test", secret_key="b" * 40, data_dir=work, redis_url=REDIS_URL,
                        rate_limits_enabled=False, worker_queues="default", log_level="WARNING",
                        quota_max_active_jobs=ROUNDS)  # its jobs never leave the training queue
    app = create_app(settings)
    upgrade()
    with app.app_context(), database.connection_context():
        owner = accounts.create_user("bench@example.com", "bench password 123")
        token = accounts.create_token(owner, "bench")[1]
    headers = {"Authorization": f"Bearer {token}"}
    chats = "".join(json.dumps({"messages": [{"role": "user", "content": f"hi {i}"},
                                             {"role": "assistant", "content": "hello"}]}) + "\n" for i in range(20))
    client = app.test_client()
    dataset = client.post("/api/v1/datasets", headers=headers, content_type="multipart/form-data",
                          data={"file": (io.BytesIO(chats.encode()), "chats.jsonl")}).get_json()
    return settings, app, client, headers, dataset["id"]


def main() -> None:
    """Measure both, side by side, and print the table."""
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as folder:
        settings, app, client, headers, dataset_id = prepare_app(Path(folder))
        app.extensions["redis"].flushdb()
        with worker_pool(settings, Path(folder) / "worker.log", pool_size=1):
            queue = Queue("default", connection=app.extensions["redis"])
            wait_until(lambda: queue.enqueue(EMPTY_FUNCTION).latest_result(timeout=5), 60, "the worker to start")
            baseline = rq_start_latencies(queue)
            studio = studio_start_latencies(app, client, headers, dataset_id)
        app.extensions["redis"].flushdb()
    print_table(baseline, studio)


def print_table(baseline: list[float], studio: list[float]) -> None:
    """p50 and p95 of both, in milliseconds, with the Studio's as ratios to the baseline."""
    rows = [("bare RQ enqueue → start (baseline)", baseline), ("POST /api/v1/jobs → job leaves queued", studio)]
    base50, base95 = percentile(baseline, 0.5), percentile(baseline, 0.95)
    print(f"\nJob start latency — {ROUNDS} rounds each, idle worker")
    print(f"{'measurement':42} {'p50 ms':>8} {'p95 ms':>8} {'p50 ×':>7} {'p95 ×':>7}")
    for name, values in rows:
        p50, p95 = percentile(values, 0.5), percentile(values, 0.95)
        print(f"{name:42} {p50 * 1000:8.1f} {p95 * 1000:8.1f} {p50 / base50:7.2f} {p95 / base95:7.2f}")
    print(f"(mean of the Studio's: {statistics.mean(studio) * 1000:.1f} ms)")


if __name__ == "__main__":
    main()
