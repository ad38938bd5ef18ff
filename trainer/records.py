"""The record formats: recognise one, check a record against it, reduce it to its canonical form, read it as chat.

Defined once for the Studio's dataset validator and the training program; standard library only.
"""
from __future__ import annotations

import contextlib
import json

RECORD_FORMATS = ("chat", "instruction", "prompt_completion", "text", "preference")
# The formats that hold pairs of answers (for preference tuning) rather than examples to imitate.
PAIR_FORMATS = ("preference",)
ROLES = ("system", "user", "assistant")
MESSAGE_KEYS = {"role", "content", "name", "weight"}
MAX_DEPTH = 16

# The keys that identify each format (any one set of them); a record holding those of two formats is ambiguous.
SIGNATURES = {
    "chat": ({"messages"},),
    "instruction": ({"instruction", "output"},),
    "prompt_completion": ({"prompt", "completion"},),
    "text": ({"text"},),
    # {prompt?, chosen, rejected}, or OpenAI's DPO lines {input, preferred_output, non_preferred_output}.
    "preference": ({"chosen", "rejected"}, {"preferred_output", "non_preferred_output"}),
}
# Any one of these keys is enough to guess what a broken record meant to be.
HINTS = {"messages": "chat", "instruction": "instruction", "output": "instruction",
         "prompt": "prompt_completion", "completion": "prompt_completion", "text": "text",
         "chosen": "preference", "rejected": "preference", "preferred_output": "preference",
         "non_preferred_output": "preference"}
# Keys no other format has: a record holding one is a preference pair, whatever else it holds (e.g. a prompt).
DECISIVE_HINTS = {"chosen", "rejected", "preferred_output", "non_preferred_output"}
EXPECTED = ("messages; instruction and output; prompt and completion; text; "
            "or chosen and rejected (preferred_output and non_preferred_output)")


def detect(record: dict) -> str | None:
    """The format a record is written in, None when it matches none or several."""
    matches = [name for name, signatures in SIGNATURES.items() if any(keys <= record.keys() for keys in signatures)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        return None
    hinted = {HINTS[key] for key in record if key in HINTS}
    if len(hinted) > 1 and DECISIVE_HINTS & record.keys() and "chat" not in hinted:
        return "preference"
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
              "prompt_completion": _prompt_completion_problems, "text": _text_problems,
              "preference": _preference_problems}
    return checks[record_format](record)


def warnings(record: dict, record_format: str) -> list[tuple[str, str]]:
    """(kind, message) for what is doubtful, though trainable, in a valid record."""
    return _preference_warnings(record) if record_format == "preference" else []


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
        found += message_problems(message, f"messages[{index}].")
    if not found and not any(message.get("role") == "assistant" for message in messages):
        found.append(("no_assistant", "there is no assistant message to learn from"))
    return found


def message_problems(message, path: str) -> list[tuple[str, str]]:
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


def _sides(record: dict) -> tuple[object, object, object, str]:
    """(prompt, chosen, rejected, the prompt's key) as written, in either of the preference layouts."""
    if "preferred_output" in record or "non_preferred_output" in record:
        given = record.get("input")
        prompt = given.get("messages") if isinstance(given, dict) else given
        return prompt, record.get("preferred_output"), record.get("non_preferred_output"), "input.messages"
    return record.get("prompt"), record.get("chosen"), record.get("rejected"), "prompt"


def _preference_problems(record: dict) -> list[tuple[str, str]]:
    """Both answers present, each ending on an assistant turn; a prompt, the same for both."""
    prompt, chosen, rejected, prompt_key = _sides(record)
    openai = prompt_key == "input.messages"
    names = ("preferred_output", "non_preferred_output") if openai else ("chosen", "rejected")
    string_answer = isinstance(chosen, str) or isinstance(rejected, str)
    found = _turns_problems(prompt, prompt_key, required=openai or string_answer, final_assistant=False)
    for name, side in zip(names, (chosen, rejected), strict=True):
        found += _turns_problems(side, name, required=True, final_assistant=True)
    if found or prompt is not None:
        return found
    # Two whole conversations: everything before each final answer is the prompt, and it must be the same.
    if chosen[:-1] != rejected[:-1]:
        shared = zip(chosen[:-1], rejected[:-1], strict=False)  # the shorter conversation's turns
        at = next((i for i, (mine, theirs) in enumerate(shared) if mine != theirs), min(len(chosen), len(rejected)) - 1)
        return [("prompt_mismatch", f"'chosen' and 'rejected' differ before their final answers (at message {at}); "
                                    "the two conversations must share everything but the last answer")]
    if len(chosen) < 2:
        return [("missing_key", "'prompt' is missing, and the conversations hold no turn before their answers")]
    return []


def _turns_problems(value, key: str, required: bool, final_assistant: bool) -> list[tuple[str, str]]:
    """Problems of one side of a pair: a non-empty string, or messages (ending with the assistant's when asked)."""
    if value is None:
        return [("missing_key", f"'{key}' is missing")] if required else []
    if isinstance(value, str):
        return [] if value.strip() else [("empty_value", f"'{key}' is empty")]
    if not isinstance(value, list) or not value:
        shown = "is empty" if value == [] else f"must be a string or an array of messages, not {json_type(value)}"
        return [("empty_value" if value == [] else "wrong_type", f"'{key}' {shown}")]
    found = []
    for index, message in enumerate(value):
        found += message_problems(message, f"{key}[{index}].")
    if not found and final_assistant and value[-1].get("role") != "assistant":
        found.append(("final_not_assistant", f"'{key}' ends with a {value[-1]['role']} turn; "
                                             "its last message must be the assistant's answer"))
    return found


def _preference_warnings(record: dict) -> list[tuple[str, str]]:
    """A pair whose two answers are the same teaches nothing."""
    _, chosen, rejected = to_pair(record)
    if chosen == rejected:
        return [("identical_answers", "the chosen and rejected answers are identical: the pair teaches nothing")]
    return []


def _as_turns(value, role: str) -> list[dict]:
    """A side of a pair as messages: a string is one message of role."""
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    return [{key: m[key] for key in ("role", "content", "name") if key in m} for m in value]


def to_pair(record: dict) -> tuple[list[dict], list[dict], list[dict]]:
    """A valid preference record, in any layout, as (prompt messages, chosen messages, rejected messages)."""
    prompt, chosen, rejected, _ = _sides(record)
    chosen, rejected = _as_turns(chosen, "assistant"), _as_turns(rejected, "assistant")
    if prompt is None:  # two whole conversations: the shared turns are the prompt
        return chosen[:-1], chosen[-1:], rejected[-1:]
    prompt = _as_turns(prompt, "user")
    # Some datasets repeat the prompt at the start of each answer's conversation.
    strip = [side[len(prompt):] if side[:len(prompt)] == prompt and len(side) > len(prompt) else side
             for side in (chosen, rejected)]
    return prompt, strip[0], strip[1]


def canonical(record: dict, record_format: str) -> dict:
    """The record reduced to its format's keys, as the training program reads it."""
    if record_format == "chat":
        return {"messages": [{key: m[key] for key in ("role", "content", "name", "weight") if key in m}
                             for m in record["messages"]]}
    if record_format == "preference":
        return dict(zip(("prompt", "chosen", "rejected"), to_pair(record), strict=True))
    if record_format == "instruction":
        reduced = {"instruction": record["instruction"], "output": record["output"]}
        if record.get("input"):
            reduced["input"] = record["input"]
        return reduced
    return {key: record[key] for key in sorted(SIGNATURES[record_format][0])}


def from_csv_row(row: dict) -> dict:
    """A CSV row as a record: empty cells dropped, a messages cell parsed from its JSON text."""
    record = {key: value for key, value in row.items() if value != ""}
    if isinstance(record.get("messages"), str):
        # Unparseable text stays a string, which the chat check reports as the wrong type.
        with contextlib.suppress(json.JSONDecodeError):
            record["messages"] = json.loads(record["messages"])
    return record


def to_messages(record: dict, record_format: str) -> list[dict]:
    """A chat, instruction, prompt_completion or preference record as chat messages (role, content, optional weight)."""
    if record_format == "chat":
        return record["messages"]
    if record_format == "preference":  # the conversation the pair prefers
        prompt, chosen, _ = to_pair(record)
        return prompt + chosen
    if record_format == "instruction":
        extra = record.get("input") or ""
        prompt = f"{record['instruction']}\n\n{extra}" if extra else record["instruction"]
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": record["output"]}]
    return [{"role": "user", "content": record["prompt"]}, {"role": "assistant", "content": record["completion"]}]


def texts(record: dict) -> list[str]:
    """Every piece of text a canonical record holds."""
    if "messages" in record:
        return [message["content"] for message in record["messages"]]
    if "chosen" in record:
        return [message["content"] for side in ("prompt", "chosen", "rejected") for message in record[side]]
    return [value for value in record.values() if isinstance(value, str)]
