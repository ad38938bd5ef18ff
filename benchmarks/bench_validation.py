"""Dataset validation against its limit: a bare loop of the same parser (msgspec) over the same chat JSONL.

The validation pass (readers, every check, statistics, canonical lines) is timed in this process over the
file's 1 MiB chunks, as the worker reads them; it parses the lines with msgspec (typed, app/datasets/fast_records.py)
and any line that check refuses again with orjson or the standard library (the full path); the walk over
the chats' messages is compiled where scripts/build_native.py built it (the table says which). The bare loop splits
the same chunks into lines and parses each with msgspec, doing nothing else. The ratio is validation MB/s over the
bare loop's (the issue's target: 0.5). Printed for scale: orjson and the standard library's json in the same bare
loop, and the pass once more writing the canonical file and its index to temporary files, as the worker does.
Each round runs every loop once, in turn, and the best round of each counts, so that a busy moment of the shared
machine does not fall on one loop only.

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

import msgspec
import orjson

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from app.datasets import fast_records  # noqa: E402
from app.datasets.record_index import IndexWriter  # noqa: E402
from app.datasets.validation import ValidationOptions, validate  # noqa: E402
from benchmarks.bench_datasets import write_chat_jsonl  # noqa: E402

MB = 1024 * 1024
SIZE = int(os.environ.get("BENCH_VALIDATION_MB", "20")) * MB
ROUNDS = 5


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


def validation_into_files(path: Path) -> int:
    """The same pass writing the canonical file and its record index to temporary files, as the worker does."""
    with tempfile.TemporaryFile() as records, tempfile.TemporaryFile() as index:
        writer = IndexWriter(records, index)
        report = validate(chunks(path), ValidationOptions(file_format="jsonl"), writer.add)
        writer.close()
    return report.valid


def best_seconds(functions: dict[str, Callable[[Path], int]], path: Path) -> dict[str, float]:
    """The fastest of ROUNDS runs of each function (the least disturbed by the shared machine), rounds interleaved."""
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(ROUNDS):
        for name, function in functions.items():
            started = time.perf_counter()
            function(path)
            times[name].append(time.perf_counter() - started)
    return {name: min(found) for name, found in times.items()}


def main() -> None:
    """Time the loops and print the table."""
    loops = {"bare loop: split lines + msgspec decode (limit)": bare_loop(msgspec.json.Decoder().decode),
             "bare loop: split lines + orjson.loads": bare_loop(orjson.loads),
             "bare loop: split lines + json.loads": bare_loop(json.loads),
             "Studio validation (every check, statistics)": validation,
             "  + canonical file and record index written": validation_into_files}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "chats.jsonl"
        megabytes = write_chat_jsonl(path, SIZE) / MB
        seconds = best_seconds(loops, path)
    limit = next(iter(seconds.values()))
    walk = "compiled" if fast_records._chat_measures is not None else "Python (the C helper is not built)"
    print(f"validation of a {megabytes:.0f} MB chat JSONL (best of {ROUNDS}; the walk over messages: {walk})")
    print(f"{'loop':48} {'MB/s':>9} {'vs limit':>8}")
    for name, taken in seconds.items():
        print(f"{name:48} {megabytes / taken:9.1f} {limit / taken:8.2f}")


if __name__ == "__main__":
    main()
