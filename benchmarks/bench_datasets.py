"""Datasets: the memory of validating worst-case files, then ingest of a ~200 MB chat JSONL.

Memory: each worst-case file (one huge row, one huge field, deep nesting, many tiny records…) is validated
in a fresh subprocess by the same pass the Studio runs (readers, checks, statistics, the canonical file and
its record index, on local temp files), and its peak RSS is printed against the largest record allowed
(DATASET_MAX_RECORD_BYTES). Peak RSS is the kernel's high-water mark of that process (VmHWM), less its RSS
just before validating; getrusage's ru_maxrss would carry the parent's peak across exec.

Ingest: gunicorn (one worker) on SQLite + a SeaweedFS S3 server + the local Redis; the file is uploaded with
a streamed request body, and throughput is printed as a ratio to a raw PUT of the same bytes measured in the
same run, with the web worker's peak memory and the validation speed.

    python benchmarks/bench_datasets.py            # both
    python benchmarks/bench_datasets.py --memory   # the memory table only
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
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from app.datasets import service  # noqa: E402
from app.datasets.record_index import IndexWriter  # noqa: E402
from app.datasets.validation import ValidationOptions, validate  # noqa: E402
from app.models import Dataset  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.storage import S3ObjectStore  # noqa: E402
from tests.support.seaweed import seaweed_server  # noqa: E402
from tests.support.settings import settings_env  # noqa: E402
from tests.support.web import gunicorn  # noqa: E402

TARGET_BYTES = int(os.environ.get("BENCH_DATASET_MB", "200")) * 1024 * 1024
MB = 1024 * 1024
WORST_CASE_BYTES = int(os.environ.get("BENCH_WORST_CASE_MB", "20")) * MB
RECORD_LIMIT = Settings.model_fields["dataset_max_record_bytes"].default


def repeated(unit: bytes, total: int) -> Iterator[bytes]:
    """unit repeated to about total bytes, in 1 MiB pieces."""
    block = unit * (MB // len(unit))
    return (block for _ in range(total // len(block)))


def worst_cases(size: int, limit: int) -> dict[str, tuple[str, Callable[[], Iterable[bytes]]]]:
    """The files that cost validation most, by name: (file format, a function yielding its bytes)."""
    depth = (limit - 40) // 2
    deep = b'{"text": "a", "x": ' + b"[" * depth + b"]" * depth + b"}\n"
    wide = b'{"text": "a", "x": [' + b"{}," * ((limit - 40) // 3) + b"{}]}\n"
    at_limit = b'{"text": "' + b"y" * (limit - 20) + b'"}\n'
    return {
        "one huge CSV row (many fields)": ("csv", lambda: chain([b"text\n"], repeated(b"a,", size), [b"\n"])),
        "one huge CSV field": ("csv", lambda: chain([b'text\n"'], repeated(b"a", size), [b'"\n'])),
        "one huge JSONL line": ("jsonl", lambda: chain([b'{"text": "'], repeated(b"x", size), [b'"}\n'])),
        "one huge JSON-array item": ("json", lambda: chain([b'[{"text": "'], repeated(b"x", size), [b'"}]'])),
        "deep nesting (JSONL lines at the limit)": ("jsonl", lambda: [deep] * (size // len(deep))),
        "many tiny values in one record": ("jsonl", lambda: [wide] * (size // len(wide))),
        "valid records at the limit": ("jsonl", lambda: [at_limit] * (size // len(at_limit))),
        "many tiny records (JSONL)": ("jsonl", lambda: (b'{"text": "%d"}\n' % i for i in range(size // 16))),
        "many tiny records (CSV)": ("csv", lambda: chain([b"text\n"], (b"%d\n" % i for i in range(size // 8)))),
    }


def process_memory_kb(field: str) -> int:
    """VmRSS (now) or VmHWM (peak) of this process, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure_validation(path: Path, file_format: str, limit: int) -> None:
    """(In a fresh subprocess) validate one file as the Studio does and print its memory and timing as JSON."""
    options = ValidationOptions(file_format=file_format, max_record_bytes=limit)
    before, started = process_memory_kb("VmRSS"), time.perf_counter()
    with path.open("rb") as source, tempfile.TemporaryFile() as records, tempfile.TemporaryFile() as index:
        writer = IndexWriter(records, index)
        report = validate(iter(lambda: source.read(MB), b""), options, writer.add)
    kinds = sorted(report.counts)
    print(json.dumps({"before_kb": before, "peak_kb": process_memory_kb("VmHWM"), "valid": report.valid,
                      "seconds": time.perf_counter() - started, "problems": kinds}))


def memory_table(size: int = WORST_CASE_BYTES, limit: int = RECORD_LIMIT) -> None:
    """Validate every worst-case file in its own process; print peak RSS against the record limit."""
    print(f"\nValidation memory — worst-case files of ~{size / MB:.0f} MB, largest record allowed {limit / MB:.0f} MiB")
    print(f"{'file':40} {'MB':>6} {'peak RSS':>9} {'growth':>8} {'× record':>8} {'seconds':>8}  outcome")
    with tempfile.TemporaryDirectory(prefix="bench-worst-") as folder:
        for name, (file_format, pieces) in worst_cases(size, limit).items():
            path = Path(folder) / f"worst.{file_format}"
            with path.open("wb") as out:
                for piece in pieces():
                    out.write(piece)
            found = json.loads(subprocess.run(
                [sys.executable, __file__, "--measure", str(path), file_format, str(limit)],
                cwd=PROJECT_ROOT, check=True, capture_output=True, text=True).stdout)
            growth = (found["peak_kb"] - found["before_kb"]) * 1024
            outcome = f"{found['valid']} valid" + (f"; {', '.join(found['problems'])}" if found["problems"] else "")
            print(f"{name:40} {path.stat().st_size / MB:6.1f} {found['peak_kb'] / 1024:7.1f}MB "
                  f"{growth / MB:6.1f}MB {growth / limit:8.1f} {found['seconds']:8.1f}  {outcome}")


def write_chat_jsonl(path: Path, size: int = TARGET_BYTES) -> int:
    """A chat dataset of about size bytes with varied lengths; returns its size."""
    with path.open("w") as out:
        index = 0
        while out.tell() < size:
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
    """The memory table, then (unless --memory) the ingest measurements; --measure is one memory subprocess."""
    if sys.argv[1:2] == ["--measure"]:
        measure_validation(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
        return
    memory_table()
    if sys.argv[1:2] != ["--memory"]:
        ingest()


def ingest() -> None:
    """Run the ingest measurements and print their table."""
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
