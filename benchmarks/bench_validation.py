"""Dataset validation against its limit: a bare loop of the same parser (orjson) over the same chat JSONL.

The validation pass (readers, every check, statistics, canonical records) is timed in this process over the
file's 1 MiB chunks, as the worker reads them; the bare loop splits the same chunks into lines and parses each
with orjson, doing nothing else. The ratio is validation MB/s over the bare loop's (the issue's target: 0.5).
The standard library's json in the same bare loop is printed for scale.

    python benchmarks/bench_validation.py        # BENCH_VALIDATION_MB (default 20) of chats
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from app.datasets.validation import ValidationOptions, validate  # noqa: E402
from benchmarks.bench_datasets import write_chat_jsonl  # noqa: E402

MB = 1024 * 1024
SIZE = int(os.environ.get("BENCH_VALIDATION_MB", "20")) * MB
ROUNDS = 3


def chunks(path: Path) -> Iterator[bytes]:
    """The file in 1 MiB pieces, as the worker reads a stored object."""
    with path.open("rb") as handle:
        while piece := handle.read(MB):
            yield piece


def bare_loop(loads: Callable) -> Callable[[Path], int]:
    """A loop that only splits the chunks into lines and parses each with loads; returns the lines parsed."""
    def run(path: Path) -> int:
        count, rest = 0, b""
        for piece in chunks(path):
            lines = (rest + piece).split(b"\n")
            rest = lines.pop()
            for line in lines:
                if line:
                    loads(line)
                    count += 1
        return count
    return run


def validation(path: Path) -> int:
    """The Studio's validation pass over the file; returns the valid records."""
    report = validate(chunks(path), ValidationOptions(file_format="jsonl"), lambda record: None)
    assert report.invalid == 0, report.as_dict()
    return report.valid


def best_seconds(function: Callable[[Path], int], path: Path) -> float:
    """The fastest of ROUNDS runs (the least disturbed by the shared machine)."""
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        function(path)
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    """Time the three loops and print the table."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "chats.jsonl"
        megabytes = write_chat_jsonl(path, SIZE) / MB
        bare = best_seconds(bare_loop(orjson.loads), path)
        stdlib = best_seconds(bare_loop(json.loads), path)
        studio = best_seconds(validation, path)
    print(f"validation of a {megabytes:.0f} MB chat JSONL (best of {ROUNDS})")
    print(f"{'loop':48} {'MB/s':>9} {'vs bare':>8}")
    for name, seconds in (("bare loop: split lines + orjson.loads (limit)", bare),
                          ("bare loop: split lines + json.loads", stdlib),
                          ("Studio validation (every check, statistics)", studio)):
        print(f"{name:48} {megabytes / seconds:9.1f} {bare / seconds:8.2f}")


if __name__ == "__main__":
    main()
