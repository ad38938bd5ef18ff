"""Dataset ingest: a ~200 MB chat JSONL uploaded through the real HTTP endpoint vs a raw object-store PUT.

Runs gunicorn (one worker) on SQLite + a SeaweedFS S3 server + the local Redis, uploads the file with
a streamed request body, and prints throughput as a ratio to a raw PUT of the same bytes measured in
the same run, the web worker's peak memory, and the validation speed.
"""
from __future__ import annotations

import http.client
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from app.datasets import service  # noqa: E402
from app.models import Dataset  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.storage import S3ObjectStore  # noqa: E402
from tests.support.seaweed import seaweed_server  # noqa: E402
from tests.support.settings import settings_env  # noqa: E402
from tests.support.web import gunicorn  # noqa: E402

TARGET_BYTES = int(os.environ.get("BENCH_DATASET_MB", "200")) * 1024 * 1024
MB = 1024 * 1024


def write_chat_jsonl(path: Path) -> int:
    """A chat dataset of about TARGET_BYTES with varied lengths; returns its size."""
    with path.open("w") as out:
        index = 0
        while out.tell() < TARGET_BYTES:
            question = f"Question {index}: " + "why is the sky blue? " * (index % 7 + 1)
            answer = "Because of Rayleigh scattering. " * (index % 11 + 1)
            record = {"messages": [{"role": "system", "content": "You answer physics questions."},
                                   {"role": "user", "content": question},
                                   {"role": "assistant", "content": answer}]}
            out.write(json.dumps(record) + "\n")
            index += 1
    return path.stat().st_size


def raw_put_seconds(store: S3ObjectStore, path: Path) -> float:
    """Seconds to PUT the file straight into the object store (unknown length, like the upload)."""
    started = time.perf_counter()
    with path.open("rb") as stream:
        store.put(f"bench/raw-{uuid.uuid4().hex}", stream)
    return time.perf_counter() - started


def multipart_body(path: Path, boundary: str):
    """The multipart request body as a stream of pieces, and its exact length."""
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nbench\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="bench.jsonl"\r\n'
            "Content-Type: application/x-ndjson\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def pieces():
        yield head
        with path.open("rb") as stream:
            while chunk := stream.read(MB):
                yield chunk
        yield tail

    return pieces(), len(head) + path.stat().st_size + len(tail)


def upload_seconds(port: int, token: str, path: Path) -> tuple[float, dict]:
    """Seconds for POST /api/v1/datasets to store the file and answer, and its answer."""
    boundary = uuid.uuid4().hex
    body, length = multipart_body(path, boundary)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    connection.request("POST", "/api/v1/datasets", body=body, headers={
        "Authorization": f"Bearer {token}", "Content-Length": str(length),
        "Content-Type": f"multipart/form-data; boundary={boundary}"})
    response = connection.getresponse()
    answer = json.loads(response.read())
    elapsed = time.perf_counter() - started
    if response.status not in (201, 202):
        raise RuntimeError(f"upload failed: {response.status} {answer}")
    return elapsed, answer


def worker_memory_mb(master_pid: int, field: str) -> float:
    """The largest VmRSS (now) or VmHWM (peak) among gunicorn's worker processes, in MB."""
    values = []
    for child in Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split():
        for line in Path(f"/proc/{child}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                values.append(int(line.split()[1]) / 1024)
    return max(values)


def flask_command(env: dict, *args: str) -> str:
    """Run a `flask --app wsgi` command with env; its standard output."""
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, check=True, input="bench password 123\n")
    return result.stdout.strip()


def main() -> None:
    """Run the measurements and print the table."""
    with tempfile.TemporaryDirectory(prefix="bench-datasets-") as folder:
        work = Path(folder)
        data = work / "chat.jsonl"
        size = write_chat_jsonl(data)
        with seaweed_server(work / "s3", "bench", uuid.uuid4().hex) as s3:
            settings = Settings(studio_env="test", secret_key="b" * 40, data_dir=work / "data",
                                database_url=f"sqlite:///{work}/bench.db", redis_url="redis://127.0.0.1:6379/15",
                                minio_endpoint=s3.endpoint, minio_user=s3.access_key, minio_password=s3.secret_key,
                                minio_bucket="bench", dataset_max_bytes=2 * size)
            env = settings_env(settings)
            flask_command(env, "db", "upgrade")
            flask_command(env, "users", "create", "bench@example.com", "--password-stdin")
            token = flask_command(env, "tokens", "create", "bench@example.com", "--name", "bench")
            store = S3ObjectStore(s3.endpoint, s3.access_key, s3.secret_key, "bench")
            store.put("bench/warm-up", io.BytesIO(b"creates the bucket"))
            raw = raw_put_seconds(store, data)
            with gunicorn(settings, work / "gunicorn.log", workers=1) as served:
                idle = worker_memory_mb(served.pid, "VmRSS")
                upload, answer = upload_seconds(served.port, token, data)
                peak = worker_memory_mb(served.pid, "VmHWM")
            validation, examples = validation_seconds(settings, answer["id"], store)
    print_table(size, raw, upload, (idle, peak), validation, examples)


def validation_seconds(settings: Settings, dataset_id: int, store: S3ObjectStore) -> tuple[float, int]:
    """Seconds for the worker's validation of the uploaded dataset, run here in-process."""
    from app.db import bind, database, make_database

    bind(make_database(settings.resolved_database_url))
    with database.connection_context():
        dataset = Dataset.get_by_id(dataset_id)
        started = time.perf_counter()
        dataset = service.run_validation(dataset, store, settings.dataset_max_record_bytes)
        return time.perf_counter() - started, dataset.example_count


def print_table(size: int, raw: float, upload: float, memory: tuple[float, float], validation: float,
                examples: int) -> None:
    """The results as a table, throughput as ratios to the raw PUT."""
    megabytes, (idle, peak) = size / MB, memory
    rows = [
        ("raw PUT to S3 (baseline)", f"{megabytes / raw:8.1f} MB/s", "1.00"),
        ("POST /api/v1/datasets via gunicorn", f"{megabytes / upload:8.1f} MB/s", f"{raw / upload:.2f}"),
        ("validation + canonical copy (worker)", f"{megabytes / validation:8.1f} MB/s",
         f"{raw / validation:.2f}"),
        ("  records validated per second", f"{examples / validation:8.0f} rec/s", ""),
        ("web worker RSS before the upload", f"{idle:8.1f} MB", ""),
        ("web worker peak RSS during upload", f"{peak:8.1f} MB", f"{peak / idle:.2f}"),
    ]
    print(f"\nDataset ingest — {megabytes:.0f} MB chat JSONL, {examples} examples")
    print(f"{'measurement':40} {'value':>16} {'ratio':>6}")
    for name, value, ratio in rows:
        print(f"{name:40} {value:>16} {ratio:>6}")


if __name__ == "__main__":
    main()
