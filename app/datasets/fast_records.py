"""The common case of a JSONL line at C speed: a record that is plainly valid, measured in a few calls.

msgspec decodes the line into typed structures that hold exactly the keys and types a valid record of the file's
format may have (so no depth, shape, type or unknown-key check is left to Python) and writes its canonical line.
A line it does not accept (any problem, or anything unusual: extra keys, a weight of 1.0, a line too long to
skip the shape check…) returns None and takes the full path, which reports problems with its own words.
Only a subset of what the full path accepts passes here, and it yields the same canonical line and measures.
"""
from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Literal

import msgspec

from app.datasets.shape import MAX_VALUES

# Longer lines may hold too many values: the full path scans their shape before parsing them.
MAX_LINE_BYTES = 2 * MAX_VALUES
# In a canonical line the role key is followed by its value's opening quote nowhere else: every quote inside a
# string is escaped, and only keys are followed by ':'. Counting these finds the roles without a Python loop.
ROLE_VALUES = tuple(f'"role":"{role}"'.encode() for role in ("system", "user", "assistant"))
CONTENT = attrgetter("content")


# What a check returns for a valid line, as statistics and the canonical file need it (a plain tuple: it is made
# for every line): (the canonical line, its characters of text, its messages per role (system, user, assistant)
# for a chat, None for the other formats).
Measured = tuple[bytes, int, tuple[int, int, int] | None]


class _Message(msgspec.Struct, forbid_unknown_fields=True):
    """A chat message; fields in canonical order, absent ones not written."""

    role: str
    content: str
    name: str | msgspec.UnsetType = msgspec.UNSET
    weight: Literal[0, 1] | msgspec.UnsetType = msgspec.UNSET


class _Chat(msgspec.Struct, forbid_unknown_fields=True):
    """A chat record with nothing but its messages."""

    messages: list[_Message]


class _PromptCompletion(msgspec.Struct, forbid_unknown_fields=True):
    """A prompt_completion record; canonical order is sorted."""

    completion: str
    prompt: str


class _Text(msgspec.Struct, forbid_unknown_fields=True):
    """A text record."""

    text: str


class _Instruction(msgspec.Struct, forbid_unknown_fields=True):
    """An instruction record; an empty or null input is left out of the canonical record."""

    instruction: str
    output: str
    input: str | None | msgspec.UnsetType = msgspec.UNSET


_ENCODE = msgspec.json.Encoder().encode
_DECODERS = {name: msgspec.json.Decoder(struct).decode for name, struct in (
    ("chat", _Chat), ("prompt_completion", _PromptCompletion), ("text", _Text), ("instruction", _Instruction))}


def _decoded(record_format: str, line: bytes):
    """The typed record, or None when the line is not a plainly valid record of the format."""
    if len(line) >= MAX_LINE_BYTES:
        return None
    try:
        return _DECODERS[record_format](line)
    except (msgspec.DecodeError, ValueError):  # ValueError: not UTF-8
        return None


def _filled(texts: list[str]) -> bool:
    """Whether every text holds more than whitespace."""
    return all(texts) and not any(map(str.isspace, texts))


def chat(line: bytes, decode=_DECODERS["chat"]) -> Measured | None:
    """A chat line: messages of known roles with content, at least one from the assistant."""
    # The hottest function of validation: the decoding and the checks are inlined rather than shared.
    if len(line) >= MAX_LINE_BYTES:
        return None
    try:
        record = decode(line)
    except (msgspec.DecodeError, ValueError):
        return None
    contents = list(map(CONTENT, record.messages))
    if not contents or not all(contents) or any(map(str.isspace, contents)):
        return None
    canonical = _ENCODE(record)
    system, user, assistant = map(canonical.count, ROLE_VALUES)
    if not assistant or system + user + assistant != len(contents):
        return None
    return canonical + b"\n", sum(map(len, contents)), (system, user, assistant)


def strings(record_format: str) -> Callable[[bytes], Measured | None]:
    """The check of a format whose record is a few non-empty strings."""
    def check(line: bytes) -> Measured | None:
        """The line's record when every string holds text."""
        record = _decoded(record_format, line)
        if record is None:
            return None
        texts = list(msgspec.structs.astuple(record))
        if not _filled(texts):
            return None
        return _ENCODE(record) + b"\n", sum(map(len, texts)), None
    return check


def instruction(line: bytes) -> Measured | None:
    """An instruction line: instruction and output hold text; input, when given, is any string."""
    record = _decoded("instruction", line)
    if record is None or not _filled([record.instruction, record.output]):
        return None
    if not record.input:
        record.input = msgspec.UNSET
    texts = [record.instruction, record.output, *([record.input] if record.input else [])]
    return _ENCODE(record) + b"\n", sum(map(len, texts)), None


CHECKS = {"chat": chat, "instruction": instruction, "prompt_completion": strings("prompt_completion"),
          "text": strings("text")}


def check_for(record_format: str | None) -> Callable[[bytes], Measured | None] | None:
    """The fast check of lines of a file in record_format, None when there is none (preference pairs)."""
    return CHECKS.get(record_format)
