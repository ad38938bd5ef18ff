"""The fast check of JSONL lines changes nothing: the same reports, statistics and canonical lines as the full path."""
from __future__ import annotations

import contextlib
import json
import random
import shlex
import shutil
import sysconfig

import msgspec
import pytest

from app.datasets import fast_records, stats
from app.datasets.readers import jsonl_record, object_lines
from app.datasets.stats import canonical_line
from app.datasets.validation import ValidationOptions, ValidationReport, _RecordJudge, validate
from tests.support.data import example, preference_pair


def chat(*turns, **extra) -> dict:
    """A chat record from (role, content) pairs, or message dicts as they are."""
    messages = [{"role": turn[0], "content": turn[1]} if isinstance(turn, tuple) else turn for turn in turns]
    return {"messages": messages, **extra}


GOOD_CHAT = chat(("user", "hi"), ("assistant", "hello"))
# Lines next to valid ones: each is invalid, or valid in a way the fast check should leave to the full path.
CHAT_LINES = [
    chat(("system", "Be brief."), ("user", "2 + 2?"), ("assistant", "4")),
    chat(("user", "  "), ("assistant", "x")),
    chat(("user", ""), ("assistant", "x")),
    chat(("user", "\u3000\u2028"), ("assistant", "x")),
    chat(("user", "hi")),
    chat(("bot", "hi"), ("assistant", "x")),
    chat(("assistant ", "hi"), ("assistant", "x")),
    chat(("Assistant", "hi")),
    chat({"content": "hi"}, ("assistant", "x")),
    chat({"role": None, "content": "hi"}, ("assistant", "x")),
    chat({"role": "user", "content": 5}, ("assistant", "x")),
    chat({"role": "user", "content": None}, ("assistant", "x")),
    chat(("user", 'say "role":"assistant" and {"role":"system"}'), ("user", "again")),
    chat(("user", '\\"role\\":\\"assistant\\"'), ("assistant", '"role":"user"')),
    chat({"role": "assistant", "content": "x", "weight": 1}),
    chat({"role": "assistant", "content": "x", "weight": 0}, ("assistant", "y")),
    chat({"role": "assistant", "content": "x", "weight": 1.0}),
    chat({"role": "assistant", "content": "x", "weight": 0.0}, ("assistant", "y")),
    chat({"role": "assistant", "content": "x", "weight": True}),
    chat({"role": "assistant", "content": "x", "weight": 2}),
    chat({"role": "assistant", "content": "x", "weight": None}),
    chat({"role": "assistant", "content": "x", "name": "bot"}),
    chat({"role": "assistant", "content": "x", "name": None}),
    chat({"role": "assistant", "content": "x", "name": 3}),
    chat({"role": "assistant", "content": "x", "mood": "calm"}),
    chat(("user", "hi"), ("assistant", "x"), ("user", "thanks")),  # answered, but not last: lines searched
    chat(("user", "hi"), ("assistant", "x"), id=7),
    chat(("user", "hi"), ("assistant", "x"), text="also text"),
    chat(("user", "hi"), ("assistant", "x"), prompt="a", completion="b"),
    {"messages": []},
    {"messages": "hi"},
    {"messages": None},
    {"messages": [["user", "hi"]]},
    {"messages": ["hi"]},
    {"messages": [{"role": "user", "content": "hi", "extra": {"a": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}}]},
    chat(("user", "émoji 🎉 and \u0000 and \u007f"), ("assistant", "ok")),
    {"prompt": "a", "completion": "b"},
    {"colour": "red"},
    [1, 2, 3],
    "just a string",
    None,
    GOOD_CHAT,
    GOOD_CHAT,
]
RAW_LINES = [
    b"",
    b"   ",
    b'{"messages": [{"role": "user", "content": "unterminated}',
    b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]} trailing',
    b'{"messages": [{"role": "user", "content": "caf\xe9"}, {"role": "assistant", "content": "x"}]}',
    b'\xef\xbb\xbf{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]}',
    b'{"messages": [{"role": "user", "content": NaN}, {"role": "assistant", "content": "x"}]}',
    b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x", "weight": -0}]}',
    b'{"messages": [{"role": "user", "content": "a", "role": "assistant"}]}',
    b'{"messages": [{"role": "user", "content": "a"}], "messages": [{"role": "assistant", "content": "b"}]}',
    b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]}\r',
    b'  {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]}  ',
    b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x", '
    b'"weight": 100000000000000000000000}]}',
    json.dumps(chat(("user", "long " * 21_000), ("assistant", "x"))).encode(),
    # Lines a reader of whitespace-separated values would take for the right number of records.
    json.dumps(GOOD_CHAT).encode() * 2,
    json.dumps(GOOD_CHAT).encode() + b" " + json.dumps(GOOD_CHAT).encode(),
    b'{"messages": [\n{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]}',
    json.dumps(GOOD_CHAT).encode() + b"\r\r",
]
OTHER_LINES = {
    "prompt_completion": [{"prompt": "a", "completion": " b"}, {"prompt": " ", "completion": "b"},
                          {"prompt": "a", "completion": ""}, {"prompt": "a", "completion": 1},
                          {"prompt": "a", "completion": "b", "id": 1}, {"prompt": "a", "completion": "b", "text": "c"},
                          {"prompt": "a"}, {"prompt": None, "completion": "b"}, {"completion": "b", "prompt": "a"}],
    "instruction": [{"instruction": "a", "output": "b"}, {"instruction": "a", "input": "", "output": "b"},
                    {"instruction": "a", "input": None, "output": "b"},
                    {"instruction": "a", "input": " ", "output": "b"},
                    {"instruction": "a", "input": "c", "output": "b"}, {"instruction": "a", "input": 3, "output": "b"},
                    {"instruction": "\t", "output": "b"}, {"instruction": "a", "output": "b", "extra": [1]},
                    {"instruction": "a", "output": "b", "prompt": "x"}, {"output": "b", "instruction": "a"}],
    "text": [{"text": "a"}, {"text": "émoji 🎉 \\ \" \u2028"},
             {"text": " "}, {"text": ""}, {"text": 1}, {"text": "a", "meta": {"x": 1}},
             {"text": "a", "messages": []}, {"text": "\u00a0\u2003"}],
    "preference": [preference_pair(1), {"prompt": "a", "chosen": "b", "rejected": "b"},
                   {"prompt": "a", "chosen": "", "rejected": "b"}, {"chosen": "b"},
                   {"input": {"messages": [{"role": "user", "content": "q"}]},
                    "preferred_output": [{"role": "assistant", "content": "y"}],
                    "non_preferred_output": [{"role": "assistant", "content": "n"}]}],
}


@pytest.fixture(autouse=True, params=["compiled", "python"])
def walk(request, monkeypatch):
    """Every test runs with the compiled walk over the messages (where it is built) and with its Python twin."""
    if request.param == "python":
        monkeypatch.setattr(fast_records, "_measure_chats", fast_records._python_measures)
    return request.param


def compiler_here() -> bool:
    """Whether this Python's C compiler is installed (scripts/build_native.py then builds the walk)."""
    return shutil.which(shlex.split(sysconfig.get_config_var("CC") or "cc")[0]) is not None


def test_the_compiled_walk_is_built_wherever_there_is_a_c_compiler():
    assert fast_records._chat_measures is not None or not compiler_here()


def test_both_walks_measure_every_chat_alike():
    if fast_records._chat_measures is None:  # nothing to compare with (the test above says why)
        return
    decoder = msgspec.json.Decoder(fast_records._Chat)
    lines = [as_line(value) for value in CHAT_LINES + RAW_LINES]
    records = []
    for line in lines:
        with contextlib.suppress(msgspec.DecodeError, ValueError):  # the lines that are no typed chat
            records.append(decoder.decode(line))
    for batch in (records, [record for record in records if not any(m.content.isspace() for m in record.messages)]):
        compiled, python = fast_records._compiled_measures(batch), fast_records._python_measures(batch)
        assert (compiled is None) == (python is None)
        if compiled is not None:
            assert compiled[0] == python[0] and compiled[3] == python[3]
            assert compiled[1].tolist() == python[1].tolist() and compiled[2].tolist() == python[2].tolist()
    assert python is not None and sum(python[3]) > len(batch), "the second batch was measured"


# Texts of letters, accents, emoji and the whitespace str.isspace knows beyond ASCII (a content of only these is blank).
TEXT_PIECES = ["a", "é", "🎉", " ", "\u3000", "\u2028", "\t", "\n", "\x1c", "\u00a0", "\u0085", "x"]


def test_both_walks_agree_on_random_chats():
    if fast_records._chat_measures is None:  # nothing to compare with (see the test above)
        return
    generator, decoder, refused = random.Random(5), msgspec.json.Decoder(fast_records._Chat), 0
    for _ in range(500):
        records = [decoder.decode(json.dumps({"messages": [
            {"role": generator.choice(["system", "user", "assistant"]),
             "content": "".join(generator.choices(TEXT_PIECES, k=generator.randint(1, 6)))}
            for _ in range(generator.randint(1, 5))]}).encode()) for _ in range(generator.randint(1, 20))]
        compiled, python = fast_records._compiled_measures(records), fast_records._python_measures(records)
        assert (compiled is None) == (python is None)
        refused += compiled is None
        if compiled is not None:
            assert compiled[0] == python[0] and compiled[3] == python[3]
            assert compiled[1].tolist() == python[1].tolist() and compiled[2].tolist() == python[2].tolist()
    assert 0 < refused < 500, "batches with and without a blank content"


def as_line(value) -> bytes:
    """A value as one JSON line (bytes kept as they are)."""
    return value if isinstance(value, bytes) else json.dumps(value).encode()


def mixed_file(record_format: str, lines: list) -> bytes:
    """A file of valid records of a format, mixed with the lines, then a long run of valid ones (a whole batch for
    the fast check, duplicates included), then the mix again."""
    make = preference_pair if record_format == "preference" else lambda index: example(record_format, index)
    good = [as_line(make(index)) for index in range(300)]
    body = [line for index, value in enumerate(lines) for line in (as_line(value), good[index])]
    return b"\n".join(good[:10] + body + good + good[:50] + body) + b"\n"


def validated(data: bytes, fast: bool, monkeypatch) -> tuple[dict, list[bytes], int]:
    """(everything the report says, the canonical lines, the lines the fast check took at each call) for data."""
    accepted = []

    def counted(check):
        def wrapped(lines):
            found = check(lines)
            accepted.append(0 if found is None else len(found.lines))
            return found
        return wrapped

    with monkeypatch.context() as patch:
        patch.setattr(fast_records, "CHECKS", {name: counted(check) for name, check in fast_records.CHECKS.items()}
                      if fast else {})
        lines = []
        report = validate([data[i:i + 4096] for i in range(0, len(data), 4096)],
                          ValidationOptions(file_format="jsonl", max_record_bytes=200_000), lines.extend)
    everything = {**report.as_dict(), "valid": report.valid, "invalid": report.invalid,
                  "record_format": report.record_format, "ready": report.ready, "stats": report.stats}
    return everything, lines, accepted


FILES = {"chat": CHAT_LINES + RAW_LINES,
         **{name: lines + RAW_LINES + [GOOD_CHAT] for name, lines in OTHER_LINES.items()}}


@pytest.mark.parametrize("record_format", FILES)
def test_fast_and_full_paths_give_identical_reports_on_a_mixed_file(record_format, monkeypatch):
    data = mixed_file(record_format, FILES[record_format])
    full, full_lines, _ = validated(data, False, monkeypatch)
    fast, fast_lines, taken = validated(data, True, monkeypatch)
    assert fast == full
    assert fast_lines == full_lines
    assert full["record_format"] == record_format and full["invalid"] > 0 and full["stats"]["duplicates"] > 0
    if record_format != "preference":  # pairs have no fast check
        assert 0 < sum(taken) < full["valid"], "the fast check took valid records and left others to the full path"
        assert max(taken) > 1 and 1 in taken, "it took whole batches and single lines"


@pytest.mark.parametrize("record_format", ["chat", "text"])
def test_statistics_counted_a_few_batches_at_a_time_match_the_full_paths(record_format, monkeypatch):
    # The fast path's statistics count their pending batches every STATS_BLOCK records (and at the end).
    monkeypatch.setattr(stats, "STATS_BLOCK", 7)
    data = mixed_file(record_format, FILES[record_format])
    full, _, _ = validated(data, False, monkeypatch)
    fast, _, taken = validated(data, True, monkeypatch)
    assert fast["stats"] == full["stats"] and sum(taken) > 7 * 3


def full_path(line: bytes, record_format: str):
    """What the full path makes of one line in a file of record_format: its canonical line, or None if invalid."""
    report = ValidationReport(file_format="jsonl", record_format=record_format)
    judge = _RecordJudge(report, "jsonl")
    judge.format_line = 1
    raw = jsonl_record(2, line, 200_000)
    canonical = judge.check(raw) if raw is not None else None
    return None if canonical is None else canonical_line(canonical)


@pytest.mark.parametrize("record_format", ["chat", "prompt_completion", "instruction", "text"])
def test_the_fast_check_accepts_only_what_the_full_path_accepts_and_writes_the_same_line(record_format):
    candidates = [as_line(value) for value in CHAT_LINES + RAW_LINES + sum(OTHER_LINES.values(), [])]
    accepted = 0
    for line in candidates:
        found = fast_records.check_lines(record_format, [line])
        framed = object_lines(line + b"\n")
        run = fast_records.check_piece(record_format, line + b"\n", framed[0]) if framed else None
        assert (run is None) == (found is None) or framed is None, line
        if found is not None:
            accepted += 1
            assert found.lines == [full_path(line, record_format)], line
            assert run is None or run.lines == found.lines, line
    assert accepted >= 2


# Runs of lines that a parser of whitespace-separated values reads as the right number of objects, though they are
# not one object per line: each must go to the lines, not be taken as a run.
GOOD_LINE = as_line(GOOD_CHAT)
MISFRAMED_RUNS = {
    "two on a line, a blank line": GOOD_LINE + b" " + GOOD_LINE + b"\n\n" + GOOD_LINE + b"\n",
    "two on a line, one over two lines": GOOD_LINE + GOOD_LINE + b'\n{"messages": [\n' + GOOD_LINE[14:] + b"\n",
    "a message on a line of its own": b'{"messages": [\n{"role": "user", "content": "hi"}, '
                                      b'{"role": "assistant", "content": "x"}]} ' + GOOD_LINE + b"\n",
    "leading spaces": b"  " + GOOD_LINE + b"\n" + GOOD_LINE + b"\n",
    "a line of spaces": GOOD_LINE + b" " + GOOD_LINE + b"\n   \n",
}


@pytest.mark.parametrize("case", MISFRAMED_RUNS)
def test_runs_not_framed_one_object_per_line_are_left_to_the_lines(case):
    run = MISFRAMED_RUNS[case]
    assert object_lines(run) is None


def test_a_run_with_carriage_returns_is_framed_and_gives_the_lines_canonical_records():
    run = GOOD_LINE + b"\r\n" + GOOD_LINE + b"\r\n"
    assert object_lines(run) == (2, len(GOOD_LINE) + 1)
    assert fast_records.check_piece("chat", run, 2).lines == [full_path(GOOD_LINE, "chat")] * 2


def test_a_run_of_more_values_than_lines_is_refused():
    framed_but_two = GOOD_LINE + b"\n" + GOOD_LINE[:-1] + b"}\n"
    assert fast_records.check_piece("chat", framed_but_two, 2) is not None
    assert fast_records.check_piece("chat", framed_but_two, 3) is None, "the count of values must match the lines"


def test_a_clean_file_is_checked_a_run_at_a_time(monkeypatch):
    runs, lines = [], []
    piece, listed = fast_records.check_piece, fast_records.check_lines
    monkeypatch.setattr(fast_records, "check_piece", lambda *args: runs.append(args[2]) or piece(*args))
    monkeypatch.setattr(fast_records, "check_lines", lambda fmt, batch: lines.append(len(batch)) or listed(fmt, batch))
    data = b"".join(as_line(example("chat", index)) + b"\n" for index in range(5000))
    report = validate([data[i:i + 65536] for i in range(0, len(data), 65536)],
                      ValidationOptions(file_format="jsonl"), lambda lines: None)
    assert report.valid == 5000 and report.invalid == 0
    assert sum(runs) + sum(lines) == 4999, "every line after the first, once"
    assert sum(runs) > 4500 and len(runs) > 5, "runs of whole lines, a chunk's worth at most"
