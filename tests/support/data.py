"""Data the tests generate: records of every format in every container, and chats a tiny model can learn."""
from __future__ import annotations

import csv
import io
import json
import random

CSV_COLUMNS = {"instruction": ["instruction", "input", "output"], "prompt_completion": ["prompt", "completion"],
               "text": ["text"], "chat": ["messages"], "preference": ["prompt", "chosen", "rejected"]}
GREETING, COUNTING = "Hello there, friend!", "One, two, three."
WORDS = ("apple", "river", "stone", "cloud", "maple", "tiger", "ocean", "piano", "lemon", "forest")


def example(record_format: str, index: int) -> dict:
    """The index-th valid record of a format."""
    if record_format == "chat":
        return {"messages": [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": f"What is {index} + {index}?"},
                             {"role": "assistant", "content": str(2 * index)}]}
    if record_format == "instruction":
        return {"instruction": f"Double {index}.", "input": "", "output": str(2 * index)}
    if record_format == "prompt_completion":
        return {"prompt": f"{index} + {index} =", "completion": f" {2 * index}"}
    return {"text": f"The double of {index} is {2 * index}."}


def examples(record_format: str, count: int = 12) -> list[dict]:
    """count valid records of a format."""
    return [example(record_format, index) for index in range(count)]


def as_jsonl(records: list) -> bytes:
    """Records as JSON lines."""
    return "".join(json.dumps(record) + "\n" for record in records).encode()


def as_json(records: list) -> bytes:
    """Records as one indented JSON array (one record spans several lines)."""
    return json.dumps(records, indent=2).encode()


def as_csv(records: list, record_format: str) -> bytes:
    """Records as CSV with a header; chat messages as a JSON cell."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS[record_format], extrasaction="ignore")
    writer.writeheader()
    for record in records:
        row = dict(record)
        if "messages" in row:
            row["messages"] = json.dumps(row["messages"])
        writer.writerow(row)
    return out.getvalue().encode()


def encode(records: list, file_format: str, record_format: str) -> bytes:
    """Records in a container."""
    if file_format == "csv":
        return as_csv(records, record_format)
    return as_json(records) if file_format == "json" else as_jsonl(records)


def chats(count: int, answer: str = "hello") -> list[dict]:
    """Tiny chat records that all get the same answer."""
    return [{"messages": [{"role": "user", "content": f"say it {index}"}, {"role": "assistant", "content": answer}]}
            for index in range(count)]


def learnable_chats(count: int, seed: int = 0) -> list[dict]:
    """Chats whose assistant answers GREETING to 'greet' prompts and COUNTING to 'count' prompts."""
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        word = rng.choice(WORDS)
        prompt, answer = rng.choice(((f"Please greet the {word}.", GREETING), (f"Count for the {word}.", COUNTING)))
        records.append({"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]})
    return records


def preference_pair(index: int) -> dict:
    """The index-th valid preference pair, as {prompt, chosen, rejected} strings."""
    return {"prompt": f"What is {index} + {index}?", "chosen": str(2 * index), "rejected": str(2 * index + 1)}


def learnable_pairs(count: int, seed: int = 0) -> list[dict]:
    """Pairs whose chosen answer follows the prompt's rule (GREETING to 'greet', COUNTING to 'count'), the other not."""
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        word = rng.choice(WORDS)
        if rng.random() < 0.5:
            records.append({"prompt": f"Please greet the {word}.", "chosen": GREETING, "rejected": COUNTING})
        else:
            records.append({"prompt": f"Count for the {word}.", "chosen": COUNTING, "rejected": GREETING})
    return records
