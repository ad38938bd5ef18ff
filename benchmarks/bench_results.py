"""Results: GET /api/v1/jobs/{id}/artifacts.zip over ~1 GB of artifacts, against reading them straight from S3.

gunicorn (one worker) on SQLite + a SeaweedFS S3 server; a succeeded job holds BENCH_ZIP_MB of artifacts (four
files). The baseline reads every artifact from the store in the same run; the zip is read over HTTP and thrown
away. The web worker's RSS before, and its peak (VmHWM) during the stream, show it never holds the archive.

    python benchmarks/bench_results.py
"""
from __future__ import annotations

import http.client
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from app.db import bind, database, make_database  # noqa: E402
from app.models import Artifact, Job, User  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.storage import S3ObjectStore  # noqa: E402
from benchmarks.bench_datasets import flask_command, worker_memory_mb  # noqa: E402
from tests.support.seaweed import seaweed_server  # noqa: E402
from tests.support.settings import settings_env  # noqa: E402
from tests.support.web import gunicorn  # noqa: E402

MB = 1024 * 1024
TOTAL_MB = int(os.environ.get("BENCH_ZIP_MB", "1024"))
FILES = 4


class Pattern:
    """A readable stream of size bytes of a repeating pattern (no memory or disk for the artifact itself)."""

    def __init__(self, size: int):
        """size bytes to hand out."""
        self.left, self.block = size, bytes(range(256)) * (MB // 256)

    def read(self, n: int = -1) -> bytes:
        """Up to n bytes."""
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return (self.block * (n // len(self.block) + 1))[:n]


def make_job(settings: Settings, store: S3ObjectStore) -> tuple[int, list[Artifact]]:
    """A succeeded job of the bench user with FILES artifacts of TOTAL_MB together."""
    bind(make_database(settings.resolved_database_url))
    size = TOTAL_MB * MB // FILES
    with database.connection_context():
        owner = User.get(User.email == "bench@example.com")
        job = Job.create(owner=owner, name="bench", base_model="tiny-random-llama", method="lora", backend="local",
                         status="succeeded")
        members = []
        for index in range(FILES):
            key = f"jobs/{job.id}/artifacts/part-{index}.bin"
            store.put(key, Pattern(size), length=size)
            members.append(Artifact.create(job=job, name=f"part-{index}.bin", object_key=key, size_bytes=size))
    return job.id, members


def direct_seconds(store: S3ObjectStore, members: list[Artifact]) -> float:
    """Seconds to read every artifact straight from the store."""
    started = time.perf_counter()
    for artifact in members:
        with store.iter_chunks(artifact.object_key) as chunks:
            for _chunk in chunks:
                pass
    return time.perf_counter() - started


def zip_seconds(port: int, token: str, job_id: int) -> tuple[float, int]:
    """Seconds to read the whole zip over HTTP, and its size."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    connection.request("GET", f"/api/v1/jobs/{job_id}/artifacts.zip", headers={"Authorization": f"Bearer {token}"})
    response = connection.getresponse()
    received = 0
    while chunk := response.read(MB):
        received += len(chunk)
    if response.status != 200:
        raise RuntimeError(f"artifacts.zip answered {response.status}")
    return time.perf_counter() - started, received


def main() -> None:
    """Measure both and print the table."""
    with tempfile.TemporaryDirectory(prefix="bench-results-") as folder:
        work = Path(folder)
        with seaweed_server(work / "s3", "bench", uuid.uuid4().hex) as s3:
            settings = Settings(studio_env="test", secret_key="b" * 40, data_dir=work / "data",
                                database_url=f"sqlite:///{work}/bench.db", redis_url="redis://127.0.0.1:6379/15",
                                minio_endpoint=s3.endpoint, minio_user=s3.access_key, minio_password=s3.secret_key,
                                minio_bucket="bench", rate_limits_enabled=False)
            env = settings_env(settings)
            flask_command(env, "db", "upgrade")
            flask_command(env, "users", "create", "bench@example.com", "--password-stdin")
            token = flask_command(env, "tokens", "create", "bench@example.com", "--name", "bench")
            store = S3ObjectStore(s3.endpoint, s3.access_key, s3.secret_key, "bench")
            job_id, members = make_job(settings, store)
            direct = direct_seconds(store, members)
            with gunicorn(settings, work / "gunicorn.log", workers=1) as served:
                idle = worker_memory_mb(served.pid, "VmRSS")
                streamed, size = zip_seconds(served.port, token, job_id)
                peak = worker_memory_mb(served.pid, "VmHWM")
    print_table(direct, streamed, size, idle, peak)


def print_table(direct: float, streamed: float, size: int, idle: float, peak: float) -> None:
    """Throughput as ratios to the direct read; the web worker's memory."""
    rows = [("read every artifact from S3 (baseline)", f"{TOTAL_MB / direct:8.1f} MB/s", "1.00"),
            ("GET artifacts.zip via gunicorn", f"{size / MB / streamed:8.1f} MB/s", f"{direct / streamed:.2f}"),
            ("web worker RSS before the download", f"{idle:8.1f} MB", ""),
            ("web worker peak RSS while streaming", f"{peak:8.1f} MB", f"{peak / idle:.2f}")]
    print(f"\nArtifacts zip — {TOTAL_MB} MB in {FILES} artifacts, archive {size / MB:.1f} MB")
    print(f"{'measurement':42} {'value':>16} {'ratio':>6}")
    for name, value, ratio in rows:
        print(f"{name:42} {value:>16} {ratio:>6}")


if __name__ == "__main__":
    main()
