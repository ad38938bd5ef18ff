"""Validation of dataset files: every format, every kind of problem with its line, and the statistics."""
from __future__ import annotations

import json
import os

import pytest

from app.datasets.readers import detect_file_format
from app.datasets.validation import MAX_LISTED_PROBLEMS, ValidationOptions, validate
from tests.support.data import as_jsonl, encode, example, examples

RECORD_FORMATS = ("chat", "instruction", "prompt_completion", "text")


def check(data: bytes, file_format: str = "jsonl", chunk_size: int = 7, **options):
    """Validate data delivered in small chunks (to cross every boundary); returns the report and records."""
    kept = []
    chunks = [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)]
    report = validate(chunks, ValidationOptions(file_format=file_format, **options),
                      lambda lines: kept.extend(map(json.loads, lines)))
    return report, kept


def problems_of(report) -> list[tuple[int, str]]:
    """(line, kind) of each listed problem."""
    return [(p.line, p.kind) for p in report.problems]


@pytest.mark.parametrize("file_format", ["jsonl", "json", "csv"])
@pytest.mark.parametrize("record_format", RECORD_FORMATS)
def test_valid_file_of_every_format_and_container_is_ready(record_format, file_format):
    report, kept = check(encode(examples(record_format), file_format, record_format), file_format)
    assert report.ready, report.as_dict()
    assert report.record_format == record_format
    assert report.valid == 12 and len(kept) == 12
    assert kept[3] == {key: value for key, value in example(record_format, 3).items() if value != ""}


@pytest.mark.parametrize("record_format", RECORD_FORMATS)
def test_file_format_is_detected_from_content_then_name(record_format):
    assert detect_file_format(encode(examples(record_format), "jsonl", record_format)[:100]) == "jsonl"
    assert detect_file_format(b"\xef\xbb\xbf  \n[{") == "json"
    assert detect_file_format(b"prompt,completion\n", "data.csv") == "csv"
    assert detect_file_format(b"text\nhello\n", "no-extension") == "csv"


@pytest.mark.parametrize("bad_line, kind", [
    ('{"messages": [{"role": "bot", "content": "hi"}, {"role": "assistant", "content": "x"}]}', "invalid_role"),
    ('{"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "x"}]}', "empty_value"),
    ('{"messages": [{"role": "user", "content": "hi"}]}', "no_assistant"),
    ('{"messages": [{"role": "user", "content": "hi", "mood": 1}, {"role": "assistant", "content": "x"}]}',
     "unknown_key"),
    ('{"messages": [{"role": "assistant", "content": "x", "weight": 2}]}', "invalid_weight"),
    ('{"messages": [{"role": "assistant", "content": 5}]}', "wrong_type"),
    ('{"messages": []}', "wrong_type"),
    ('{"prompt": "a", "completion": "b"}', "mixed_formats"),
    ('{"messages": [{"role": "user", "content": "hi"}], "prompt": "x", "completion": "y"}', "unknown_format"),
    ('{"colour": "red"}', "unknown_format"),
    ('[1, 2, 3]', "not_object"),
    ('{"messages": [{"role": "user", "content": "unterminated}', "json"),
])
def test_each_kind_of_problem_is_reported_on_its_line(bad_line, kind):
    lines = [json.dumps(record) for record in examples("chat")]
    lines.insert(5, bad_line)
    report, kept = check("\n".join(lines).encode())
    assert (6, kind) in problems_of(report)
    assert not report.ready and report.invalid == 1 and len(kept) == 12


def test_instruction_and_prompt_records_name_the_missing_key():
    records = examples("instruction")
    records[2] = {"instruction": "do", "input": 3}
    report, _ = check(as_jsonl(records))
    messages = [p.message for p in report.problems]
    assert "'output' is missing" in messages and "'input' must be a string, not a number" in messages
    assert {p.line for p in report.problems} == {3}


def test_skip_invalid_keeps_the_good_records_and_reports_the_dropped():
    data = as_jsonl(examples("text", 15)) + b'{"text": ""}\nnot json\n'
    report, kept = check(data, skip_invalid=True)
    assert report.ready and len(kept) == 15
    assert report.as_dict()["dropped"] == 2
    assert problems_of(report) == [(16, "empty_value"), (17, "json")]


def test_fewer_than_ten_examples_is_not_enough():
    report, _ = check(as_jsonl(examples("text", 9)))
    assert not report.ready and problems_of(report) == [(1, "too_few_examples")]


@pytest.mark.parametrize("data", [b"", b"\n\n  \n"])
def test_empty_file_is_reported(data):
    report, _ = check(data)
    assert not report.ready and problems_of(report) == [(1, "empty_file")]


def test_binary_garbage_is_rejected_line_by_line_without_crashing():
    garbage = os.urandom(64 * 1024)
    report, kept = check(garbage, chunk_size=4096)
    assert not report.ready and not kept
    assert set(report.counts) <= {"encoding", "json", "not_object", "too_few_examples", "empty_file"}


def test_wrong_encoding_is_reported_with_its_line():
    records = examples("text")
    data = as_jsonl(records[:4]) + '{"text": "café"}\n'.encode("latin-1") + as_jsonl(records[4:])
    report, _ = check(data)
    assert (5, "encoding") in problems_of(report)


def test_a_ten_megabyte_line_is_rejected_without_reading_it_whole():
    huge = b'{"text": "' + b"x" * (10 * 1024 * 1024) + b'"}\n'
    report, kept = check(as_jsonl(examples("text")) + huge + b'{"text": "after"}\n',
                         chunk_size=1024 * 1024, max_record_bytes=1024 * 1024)
    assert (13, "too_long") in problems_of(report)
    assert len(kept) == 13, "the line after the long one is still read"


@pytest.mark.parametrize("nesting", [40, 100_000])
def test_deeply_nested_records_are_rejected(nesting):
    deep = b'{"text": "a", "extra": ' + b"[" * nesting + b"]" * nesting + b"}\n"
    report, _ = check(as_jsonl(examples("text")) + deep, chunk_size=65536, max_record_bytes=1024 * 1024)
    assert (13, "too_deep") in problems_of(report)


def test_json_array_syntax_error_points_at_its_line_and_ends_the_file():
    lines = json.dumps(examples("text"), indent=1).splitlines()
    broken_at = next(i for i, line in enumerate(lines) if "double of 5 " in line)
    lines[broken_at] += " oops"
    report, kept = check("\n".join(lines).encode(), "json")
    assert report.fatal and not report.ready and len(kept) == 5
    assert problems_of(report)[0] == (broken_at + 1, "json")


def test_json_file_that_is_not_an_array_is_refused():
    report, _ = check(b'{"text": "a"}', "json")
    assert report.fatal and problems_of(report)[0] == (1, "json")


def test_csv_with_missing_columns_is_reported_on_the_header_line():
    report, _ = check(b"question,answer\nwhat,that\n", "csv")
    assert problems_of(report) == [(1, "missing_columns")]
    assert "question" in report.problems[0].message


def test_csv_row_of_the_wrong_width_is_reported_with_its_line():
    data = b"prompt,completion\n" + b"".join(f"p{i},c{i}\n".encode() for i in range(11)) + b"only one\n"
    report, _ = check(data, "csv")
    assert problems_of(report) == [(13, "csv")]


def test_crlf_and_byte_order_mark_are_accepted():
    data = b"\xef\xbb\xbf" + as_jsonl(examples("text")).replace(b"\n", b"\r\n")
    report, kept = check(data)
    assert report.ready and kept[0] == {"text": "The double of 0 is 0."}


def test_only_the_first_hundred_problems_are_listed_but_all_are_counted():
    report, _ = check(b"nope\n" * 250)
    assert len(report.problems) == MAX_LISTED_PROBLEMS
    assert report.counts["json"] == 250 and report.as_dict()["truncated"]


def test_statistics_describe_lengths_duplicates_and_long_examples():
    records = [{"text": "x" * (40 * (i + 1))} for i in range(20)] + [{"text": "x" * 40}]
    report, _ = check(as_jsonl(records), max_seq_length=100)
    stats = report.stats
    assert stats["examples"] == 21 and stats["duplicates"] == 1
    assert stats["example_tokens"]["max"] == 200 and stats["example_tokens"]["min"] == 10
    assert stats["example_tokens"]["p50"] == 100 and stats["example_tokens"]["p95"] == 190
    assert stats["over_max_seq_length"] == 10
    assert stats["tokens"]["method"] == "estimate" and "characters" in stats["tokens"]["note"]


def test_chat_statistics_count_messages_and_roles():
    report, _ = check(as_jsonl(examples("chat")))
    assert report.stats["messages_per_example"] == {"min": 3, "mean": 3.0, "max": 3}
    assert report.stats["roles"] == {"system": 12, "user": 12, "assistant": 12}


def test_a_lone_surrogate_escape_is_valid_and_kept_escaped_in_the_canonical_line():
    lines = []
    data = b"".join(b'{"text": "record %d \\ud800"}\n' % index for index in range(12))
    report = validate([data], ValidationOptions(file_format="jsonl"), lines.extend)
    assert report.ready and report.valid == 12
    assert lines[0] == b'{"text":"record 0 \\ud800"}' and json.loads(lines[0]) == {"text": "record 0 \ud800"}
