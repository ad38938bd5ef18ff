"""Validation holds one record at a time, whatever the file: per-record limits in every reader, bounded statistics."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator

import numpy
import pytest

from app.datasets.stats import FILTER_BLOCK, DuplicateCounter, StatsAccumulator, fingerprints
from app.datasets.validation import ValidationOptions, validate
from tests.support.data import as_jsonl, examples
from tests.support.processes import PROJECT_ROOT

MIB = 1024 * 1024
LIMIT = 64 * 1024
GOOD_CSV = b"text\n" + b"".join(f"row {i}\n".encode() for i in range(12))


def check(data: bytes, file_format: str, chunk_size: int = 8192, **options):
    """Validate data delivered in chunks; returns the report and the kept records."""
    kept = []
    chunks = (data[i:i + chunk_size] for i in range(0, len(data), chunk_size))
    options = {"max_record_bytes": LIMIT, **options}
    report = validate(chunks, ValidationOptions(file_format=file_format, **options),
                      lambda lines: kept.extend(map(json.loads, lines)))
    return report, kept


def problems_of(report) -> list[tuple[int, str]]:
    """(line, kind) of each listed problem."""
    return [(p.line, p.kind) for p in report.problems]


def test_csv_row_of_many_fields_over_the_limit_is_too_long_on_its_line():
    wide = b"a," * LIMIT + b"a\n"
    report, kept = check(GOOD_CSV + wide + b"after\n", "csv")
    assert problems_of(report) == [(14, "too_long")]
    assert len(kept) == 13, "the row after the long one is still read"


def test_csv_field_over_the_limit_is_too_long_and_the_file_goes_on():
    huge = b'"' + b"x\n" * LIMIT + b'"\n'
    report, kept = check(GOOD_CSV + huge + b"after\n", "csv")
    assert problems_of(report) == [(14 + LIMIT, "too_long")], "the row's last line, as for every CSV problem"
    assert not report.fatal and len(kept) == 13


def test_csv_quoted_newlines_and_doubled_quotes_stay_inside_their_field():
    data = b'prompt,completion\n"say ""hi""\nplease",ok\n' + b"".join(f"p{i},c{i}\r\n".encode() for i in range(11))
    report, kept = check(data, "csv", chunk_size=3)
    assert report.ready, report.as_dict()
    assert kept[0] == {"prompt": 'say "hi"\nplease', "completion": "ok"}


def test_csv_bad_bytes_are_an_encoding_problem_of_their_row_only():
    data = GOOD_CSV + "café\n".encode("latin-1") + b"after\n"
    report, kept = check(data, "csv")
    assert problems_of(report) == [(14, "encoding")] and len(kept) == 13


def test_problem_messages_stay_short_whatever_the_record_holds():
    key = "k" * 50_000
    report, _ = check(as_jsonl(examples("text")) + as_jsonl([{key: "v"}]), "jsonl")
    assert report.problems and all(len(problem.message) < 1000 for problem in report.problems)


def generated(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """The file as chunks, produced as read, so that the test itself holds none of it."""
    yield from pieces


def repeat(unit: bytes, total: int) -> Iterator[bytes]:
    """unit repeated to about total bytes, in 1 MiB chunks."""
    block = unit * (MIB // len(unit))
    for _ in range(max(1, total // len(block))):
        yield block


WORST_CASES = {
    "one huge CSV row": ("csv", lambda: [b"text\n", *repeat(b"a,", 8 * MIB), b"\n"]),
    "one huge CSV field": ("csv", lambda: [b'text\n"', *repeat(b"a", 8 * MIB), b'"\n']),
    "one huge JSONL line": ("jsonl", lambda: [b'{"text": "', *repeat(b"x", 8 * MIB), b'"}\n']),
    "one huge JSON item": ("json", lambda: [b'[{"text": "', *repeat(b"x", 8 * MIB), b'"}]']),
    "deep nesting": ("jsonl", lambda: [b'{"text": "a", "x": ' + b"[" * 400_000 + b"]" * 400_000 + b"}\n"] * 8),
    "many tiny values in one record": ("jsonl", lambda: [b'{"text": "a", "x": [' + b"{}," * 300_000 + b"{}]}\n"] * 4),
    # 10,000 records of 1 KiB: 10 MiB in all, so keeping them would break the bound (fewer, larger records
    # than "tiny" because tracemalloc makes each allocation slow).
    "many tiny records": ("jsonl", lambda: (b'{"text": "%d %s"}\n' % (i, b"w" * 1000) for i in range(10_000))),
}


@pytest.mark.parametrize("case", WORST_CASES)
def test_validation_memory_stays_within_a_constant_of_the_largest_record(case):
    file_format, pieces = WORST_CASES[case]
    tracemalloc.start()
    try:
        validate(generated(iter(pieces())), ValidationOptions(file_format=file_format, max_record_bytes=MIB),
                 lambda record: None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * MIB, f"{case}: {peak / MIB:.1f} MiB for records of at most 1 MiB"


def test_duplicates_beyond_the_exact_cap_are_counted_approximately_and_labelled():
    stats = StatsAccumulator(2048, exact_duplicates=100)
    for index in list(range(1000)) + list(range(900, 1000)):
        stats.add({"text": f"record {index}"})
    result = stats.result()
    assert result["duplicates_method"] == "approximate" and "filter" in result["duplicates_note"]
    assert 100 <= result["duplicates"] <= 103, "a false positive of the filter is rare, never a miss"


def test_length_statistics_come_from_counts_per_length():
    stats = StatsAccumulator(100)
    for length in [40 * (i + 1) for i in range(20)] + [40]:
        stats.add({"text": "x" * length})
    result = stats.result()
    assert result["example_tokens"] == {"min": 10, "p50": 100, "p95": 190, "max": 200, "mean": 100.5}
    assert result["over_max_seq_length"] == 10 and result["duplicates"] == 1
    assert result["duplicates_method"] == "exact"


def test_duplicates_counted_a_batch_at_a_time_match_one_at_a_time_across_the_exact_cap():
    # The filter takes fingerprints in blocks counted from its first one, so however the records come in batches
    # (one at a time, 128, the blocks' size, more), the count is the same; and a repeat within a block counts.
    lines = [b"record %d\n" % (index % 700) for index in range(3 * FILTER_BLOCK)]
    counts = set()
    for batch in (1, 128, FILTER_BLOCK, 3 * FILTER_BLOCK - 1):
        counter = DuplicateCounter(exact=500)
        for start in range(0, len(lines), batch):
            counter.add_all(fingerprints(lines[start:start + batch]))
        assert counter.approximate
        counts.add(counter.duplicates)
    assert counts == {len(lines) - 700}


def test_the_filter_counts_a_repeat_inside_one_block_and_no_first_copy():
    counter = DuplicateCounter(exact=0)
    distinct = fingerprints([b"line %d\n" % index for index in range(1000)])
    counter.add_all(numpy.concatenate((distinct, distinct[:10], distinct[:10])))
    assert counter.duplicates == 20


def test_a_records_fingerprint_is_the_same_in_every_process():
    # A keyed hash (Python's hash() of bytes) would change with the process, and an approximate duplicate count
    # with it, between two validations of one file.
    script = "from app.datasets.stats import fingerprints; print(fingerprints([b'{\"text\":\"hi\"}\\n', b'x\\n']))"
    printed = {subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONHASHSEED": seed},
                              cwd=PROJECT_ROOT, capture_output=True, text=True, check=True).stdout
               for seed in ("1", "2")}
    assert len(printed) == 1 and printed.pop().strip() == str(fingerprints([b'{"text":"hi"}\n', b"x\n"]))


def test_the_kept_fingerprints_are_counted_exactly_and_still_found_once_the_filter_takes_over():
    counter = DuplicateCounter(exact=1000)
    distinct = fingerprints([b"line %d\n" % index for index in range(600)])
    counter.add_all(numpy.concatenate((distinct, distinct[:400])))  # the cap: 400 repeats, counted exactly
    assert not counter.approximate and counter.duplicates == 400
    for value in distinct[:100].tolist():  # one at a time past the cap: each is a repeat of a kept one
        counter.add(value)
    assert counter.approximate and counter.duplicates == 500
