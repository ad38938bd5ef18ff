"""The four record formats: recognise one, check a record against it, reduce it to its canonical form, read it as chat.

Defined once for the Studio's dataset validator and the training program; standard library only.
"""
from __future__ import annotations

import contextlib
import json

RECORD_FORMATS = ("chat", "instruction", "prompt_completion", "text")
ROLES = ("system", "user", "assistant")
MESSAGE_KEYS = {"role", "content", "name", "weight"}
MAX_DEPTH = 16

# The keys that identify each format; a record holding those of two formats is ambiguous.
SIGNATURES = {
    "chat": {"messages"},
    "instruction": {"instruction", "output"},
    "prompt_completion": {"prompt", "completion"},
    "text": {"text"},
}
# Any one of these keys is enough to guess what a broken record meant to be.
HINTS = {"messages": "chat", "instruction": "instruction", "output": "instruction",
         "prompt": "prompt_completion", "completion": "prompt_completion", "text": "text"}
EXPECTED = "messages; instruction and output; prompt and completion; or text"


def detect(record: dict) -> str | None:
    """The format a record is written in, None when it matches none or several."""
    matches = [name for name, keys in SIGNATURES.items() if keys <= record.keys()]
    if len(matches) == 1:
        return matches[0]
    if matches:
        return None
    hinted = {HINTS[key] for key in record if key in HINTS}
    return hinted.pop() if len(hinted) == 1 else None


def depth(value, limit: int = MAX_DEPTH) -> int:
    """How deeply value nests lists and objects, counted without recursion and up to limit + 1."""
    deepest, stack = 0, [(value, 1)]
    while stack and deepest <= limit:
        node, level = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def problems(record: dict, record_format: str) -> list[tuple[str, str]]:
    """(kind, message) for everything wrong with record as a record of record_format."""
    checks = {"chat": _chat_problems, "instruction": _instruction_problems,
              "prompt_completion": _prompt_completion_problems, "text": _text_problems}
    return checks[record_format](record)


def _required_string(record: dict, key: str, path: str = "") -> list[tuple[str, str]]:
    """Problems of a key that must hold a non-empty string."""
    where = f"{path}{key}"
    if key not in record:
        return [("missing_key", f"'{where}' is missing")]
    value = record[key]
    if not isinstance(value, str):
        return [("wrong_type", f"'{where}' must be a string, not {json_type(value)}")]
    if not value.strip():
        return [("empty_value", f"'{where}' is empty")]
    return []


def json_type(value) -> str:
    """The JSON name of value's type."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _instruction_problems(record: dict) -> list[tuple[str, str]]:
    """instruction and output are required; input is an optional string."""
    found = _required_string(record, "instruction") + _required_string(record, "output")
    if record.get("input") is not None and not isinstance(record["input"], str):
        found.append(("wrong_type", f"'input' must be a string, not {json_type(record['input'])}"))
    return found


def _prompt_completion_problems(record: dict) -> list[tuple[str, str]]:
    """prompt and completion are required."""
    return _required_string(record, "prompt") + _required_string(record, "completion")


def _text_problems(record: dict) -> list[tuple[str, str]]:
    """text is required."""
    return _required_string(record, "text")


def _chat_problems(record: dict) -> list[tuple[str, str]]:
    """A non-empty list of valid messages with at least one from the assistant."""
    messages = record.get("messages")
    if messages is None:
        return [("missing_key", "'messages' is missing")]
    if not isinstance(messages, list) or not messages:
        return [("wrong_type", "'messages' must be a non-empty array of {role, content} objects")]
    found = []
    for index, message in enumerate(messages):
        found += _message_problems(message, f"messages[{index}].")
    if not found and not any(message.get("role") == "assistant" for message in messages):
        found.append(("no_assistant", "there is no assistant message to learn from"))
    return found


def _message_problems(message, path: str) -> list[tuple[str, str]]:
    """Problems of one chat message."""
    if not isinstance(message, dict):
        return [("wrong_type", f"'{path[:-1]}' must be an object, not {json_type(message)}")]
    found = [("unknown_key", f"'{path}{key}' is not a message key (use role, content, name, weight)")
             for key in sorted(message.keys() - MESSAGE_KEYS)]
    role = message.get("role")
    if role not in ROLES:
        shown = json.dumps(role)[:40] if role is not None else "missing"
        found.append(("invalid_role", f"'{path}role' is {shown}; use system, user or assistant"))
    found += _required_string(message, "content", path)
    if "name" in message and not isinstance(message["name"], str):
        found.append(("wrong_type", f"'{path}name' must be a string"))
    if "weight" in message and (message["weight"] not in (0, 1) or isinstance(message["weight"], bool)):
        found.append(("invalid_weight", f"'{path}weight' must be 0 or 1"))
    return found


def canonical(record: dict, record_format: str) -> dict:
    """The record reduced to its format's keys, as the training program reads it."""
    if record_format == "chat":
        return {"messages": [{key: m[key] for key in ("role", "content", "name", "weight") if key in m}
                             for m in record["messages"]]}
    if record_format == "instruction":
        reduced = {"instruction": record["instruction"], "output": record["output"]}
        if record.get("input"):
            reduced["input"] = record["input"]
        return reduced
    return {key: record[key] for key in sorted(SIGNATURES[record_format])}


def from_csv_row(row: dict) -> dict:
    """A CSV row as a record: empty cells dropped, a messages cell parsed from its JSON text."""
    record = {key: value for key, value in row.items() if value != ""}
    if isinstance(record.get("messages"), str):
        # Unparseable text stays a string, which the chat check reports as the wrong type.
        with contextlib.suppress(json.JSONDecodeError):
            record["messages"] = json.loads(record["messages"])
    return record


def to_messages(record: dict, record_format: str) -> list[dict]:
    """A chat, instruction or prompt_completion record as chat messages (role, content, optional weight)."""
    if record_format == "chat":
        return record["messages"]
    if record_format == "instruction":
        extra = record.get("input") or ""
        prompt = f"{record['instruction']}\n\n{extra}" if extra else record["instruction"]
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": record["output"]}]
    return [{"role": "user", "content": record["prompt"]}, {"role": "assistant", "content": record["completion"]}]


def texts(record: dict) -> list[str]:
    """Every piece of text a canonical record holds."""
    if "messages" in record:
        return [message["content"] for message in record["messages"]]
    return [value for value in record.values() if isinstance(value, str)]
