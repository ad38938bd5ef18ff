"""Preference datasets: both layouts detected as `preference`, every problem on its line, warnings, statistics."""
from __future__ import annotations

import json

import pytest

from app.datasets.excerpts import excerpt
from app.datasets.validation import ValidationOptions, validate
from tests.support.data import as_csv, as_json, as_jsonl, preference_pair


def check(data: bytes, file_format: str = "jsonl", **options):
    """Validate data in small chunks; returns the report and the canonical records kept."""
    kept = []
    chunks = [data[i:i + 7] for i in range(0, len(data), 7)]
    report = validate(chunks, ValidationOptions(file_format=file_format, **options),
                      lambda lines: kept.extend(map(json.loads, lines)))
    return report, kept


def turns(*pairs: tuple[str, str]) -> list[dict]:
    """Messages from (role, content) pairs."""
    return [{"role": role, "content": content} for role, content in pairs]


def openai_pair(index: int) -> dict:
    """The index-th pair in OpenAI's DPO layout."""
    return {"input": {"messages": turns(("user", f"What is {index} + {index}?"))},
            "preferred_output": turns(("assistant", str(2 * index))),
            "non_preferred_output": turns(("assistant", str(2 * index + 1)))}


def conversations_pair(index: int) -> dict:
    """The index-th pair as two whole conversations that share their prompt."""
    prompt = ("system", "Be brief."), ("user", f"What is {index} + {index}?")
    return {"chosen": turns(*prompt, ("assistant", str(2 * index))),
            "rejected": turns(*prompt, ("assistant", str(2 * index + 1)))}


def message_lists_pair(index: int) -> dict:
    """The index-th pair with a shared prompt and two answers, each a list of messages."""
    return {"prompt": turns(("user", f"What is {index} + {index}?")),
            "chosen": turns(("assistant", str(2 * index))), "rejected": turns(("assistant", str(2 * index + 1)))}


LAYOUTS = {"strings": preference_pair, "openai": openai_pair, "conversations": conversations_pair,
           "message_lists": message_lists_pair}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_is_a_preference_dataset_with_one_canonical_form(layout):
    report, kept = check(as_jsonl([LAYOUTS[layout](i) for i in range(12)]))
    assert report.ready, report.as_dict()
    assert report.record_format == "preference" and report.valid == 12
    assert kept[3]["chosen"] == [{"role": "assistant", "content": "6"}]
    assert kept[3]["rejected"] == [{"role": "assistant", "content": "7"}]
    assert kept[3]["prompt"][-1] == {"role": "user", "content": "What is 3 + 3?"}


@pytest.mark.parametrize("file_format", ["json", "csv"])
def test_string_pairs_are_read_from_json_arrays_and_csv(file_format):
    records = [preference_pair(i) for i in range(12)]
    data = as_csv(records, "preference") if file_format == "csv" else as_json(records)
    report, kept = check(data, file_format)
    assert report.ready and report.record_format == "preference" and len(kept) == 12


@pytest.mark.parametrize("bad, kind, words", [
    ({"prompt": "q", "chosen": "a"}, "missing_key", "'rejected' is missing"),
    ({"prompt": "q", "rejected": "b"}, "missing_key", "'chosen' is missing"),
    ({"prompt": "q", "chosen": "  ", "rejected": "b"}, "empty_value", "'chosen' is empty"),
    ({"prompt": "q", "chosen": "a", "rejected": []}, "empty_value", "'rejected' is empty"),
    ({"chosen": "a", "rejected": "b"}, "missing_key", "'prompt' is missing"),
    ({"prompt": "q", "chosen": turns(("assistant", "a"), ("user", "more?")), "rejected": "b"},
     "final_not_assistant", "'chosen' ends with a user turn"),
    ({"input": {"messages": turns(("user", "q"))}, "preferred_output": turns(("assistant", "a")),
      "non_preferred_output": turns(("user", "b"))}, "final_not_assistant", "'non_preferred_output' ends with"),
    ({"preferred_output": turns(("assistant", "a")), "non_preferred_output": turns(("assistant", "b"))},
     "missing_key", "'input.messages' is missing"),
    ({"input": {"messages": turns(("user", "q"))}, "preferred_output": [], "non_preferred_output":
      turns(("assistant", "b"))}, "empty_value", "'preferred_output' is empty"),
    ({"chosen": turns(("user", "q"), ("assistant", "a")), "rejected": turns(("user", "Q"), ("assistant", "b"))},
     "prompt_mismatch", "differ before their final answers (at message 0)"),
    ({"prompt": "q", "chosen": turns(("robot", "a")), "rejected": "b"}, "invalid_role", "'chosen[0].role'"),
    ({"prompt": "q", "chosen": 5, "rejected": "b"}, "wrong_type", "'chosen' must be a string or an array"),
])
def test_each_preference_problem_is_reported_on_its_line(bad, kind, words):
    lines = [json.dumps(preference_pair(i)) for i in range(12)]
    lines.insert(4, json.dumps(bad))
    report, kept = check("\n".join(lines).encode())
    found = [(p.line, p.kind, p.message) for p in report.problems]
    assert any(line == 5 and k == kind and words in message for line, k, message in found), found
    assert not report.ready and report.invalid == 1 and len(kept) == 12


def test_identical_answers_are_a_warning_with_its_line_and_a_count():
    records = [preference_pair(i) for i in range(12)]
    records[2] = {"prompt": "q", "chosen": "same", "rejected": "same"}
    records[7] = {"prompt": "r", "chosen": turns(("assistant", "x")), "rejected": "x"}
    report, kept = check(as_jsonl(records))
    assert report.ready and len(kept) == 12, "a warning does not make the dataset unusable"
    assert [(w.line, w.kind) for w in report.warnings] == [(3, "identical_answers"), (8, "identical_answers")]
    assert report.as_dict()["warning_counts"] == {"identical_answers": 2}


def test_a_pair_file_with_an_sft_record_is_mixed():
    lines = [json.dumps(preference_pair(i)) for i in range(12)]
    lines.insert(2, json.dumps({"prompt": "q", "completion": "a"}))
    report, _ = check("\n".join(lines).encode())
    assert [(p.line, p.kind) for p in report.problems] == [(3, "mixed_formats")]


def test_statistics_give_side_lengths_length_bias_and_pairs_too_long():
    records = [{"prompt": "p" * 40, "chosen": "c" * (8 * (i + 1)), "rejected": "r" * 8} for i in range(12)]
    report, _ = check(as_jsonl(records), max_seq_length=30)
    pairs = report.stats["preference"]
    assert pairs["pairs"] == 12
    assert pairs["prompt_tokens"] == {"min": 14, "p50": 14, "mean": 14.0, "max": 14}
    assert pairs["rejected_tokens"]["max"] == 6 and pairs["chosen_tokens"]["max"] == 28
    assert pairs["chosen_longer"] == 11 and pairs["same_length"] == 1
    assert pairs["chosen_longer_fraction"] == round(11 / 12, 3)
    # prompt (14) + the longer answer (6 + 2i) is over 30 from i = 6 on.
    assert pairs["over_max_seq_length"] == 6 == report.stats["over_max_seq_length"]


def test_preview_excerpt_keeps_both_answers_within_the_budget():
    record = {"prompt": turns(("user", "q" * 5000)), "chosen": turns(("assistant", "c" * 5000)),
              "rejected": turns(("assistant", "r" * 100))}
    shown, cut = excerpt(record, budget=900)
    assert cut and shown["rejected"][0]["content"] == "r" * 100
    assert shown["chosen"][0]["content"].startswith("c" * 300) and len(shown["prompt"][0]["content"]) < 400
