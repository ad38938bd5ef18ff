"""The common case of JSONL lines at C speed: records that are plainly valid, checked a run of lines at a time.

msgspec decodes the lines into typed structures that hold exactly the keys and types a valid record of the file's
format may have (so no depth, shape, type or unknown-key check is left to Python) and writes their canonical lines;
the remaining checks and the measures run over the whole batch at once: for chats one walk over the messages in C
(chat_measures.c, with a Python twin where it is not built), for other formats C-level calls (map, all, count).
A run of lines framed as one object each is decoded in one call (check_piece); a batch with any line the checks do
not accept (a problem, or anything unusual: extra keys, a weight of 1.0, a line too long to skip the shape check, a
blank line…) returns None, and its lines are retried a list at a time (check_lines), each refused one taking the
full path, which reports problems with its own words. Only a subset of what the full path accepts passes here,
with the same canonical line and measures.
"""
from __future__ import annotations

from collections.abc import Iterable
from itertools import chain, repeat
from operator import attrgetter, contains
from typing import Annotated, Literal, NamedTuple

import msgspec
import numpy

from app.datasets.shape import MAX_VALUES
from trainer.records import ROLES

try:
    from app.datasets import _chat_measures
except ImportError:  # not built here (no C compiler): _python_measures does the same
    _chat_measures = None

# Longer lines may hold too many values: the full path scans their shape before parsing them, so a batch of lines
# is given to the fast check only if none is this long (readers.object_lines, or the split lines, tell the longest).
MAX_LINE_BYTES = 2 * MAX_VALUES
# In a canonical line the role key is followed by its value's opening quote nowhere else (every quote inside a
# string is escaped, and only keys are followed by ':'), so this finds a chat's assistant turn in C.
ASSISTANT_ROLE = b'"role":"assistant"'
ASSISTANT = ROLES[ROLES.index("assistant")]  # the object msgspec's Literal hands back
MESSAGES, CONTENT, ROLE = attrgetter("messages"), attrgetter("content"), attrgetter("role")
# What msgspec checks as it decodes: a string holding something (whitespace is looked for after), one of the roles.
Text = Annotated[str, msgspec.Meta(min_length=1)]
Role = Literal[ROLES]
INSTRUCTION, OUTPUT = attrgetter("instruction"), attrgetter("output")


class Batch(NamedTuple):
    """Valid records as statistics and the canonical file need them."""

    lines: list[bytes]
    characters: numpy.ndarray
    # Messages per record, and all the batch's messages per role (in ROLES' order), for chats; None otherwise.
    sizes: numpy.ndarray | None = None
    roles: tuple[int, ...] | None = None


class _Message(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A chat message; fields in canonical order, absent ones not written."""

    role: Role
    content: Text
    name: str | msgspec.UnsetType = msgspec.UNSET
    weight: Literal[0, 1] | msgspec.UnsetType = msgspec.UNSET


class _Chat(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A chat record with nothing but its messages."""

    messages: Annotated[list[_Message], msgspec.Meta(min_length=1)]


class _PromptCompletion(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A prompt_completion record; canonical order is sorted."""

    completion: str
    prompt: str


class _Text(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A text record."""

    text: str


class _Instruction(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """An instruction record; an empty or null input is left out of the canonical record."""

    instruction: str
    output: str
    input: str | None | msgspec.UnsetType = msgspec.UNSET


_ENCODE = msgspec.json.Encoder().encode
_DECODERS = {name: msgspec.json.Decoder(struct) for name, struct in (
    ("chat", _Chat), ("prompt_completion", _PromptCompletion), ("text", _Text), ("instruction", _Instruction))}
# What the decoders refuse: ValueError when not UTF-8; TypeError for a line too long to be read (None).
_REFUSED = (msgspec.DecodeError, ValueError, TypeError)


def check_lines(record_format: str, lines: list[bytes | None]) -> Batch | None:
    """The valid records of the lines, or None unless every line is a plainly valid record of the format."""
    try:
        records = list(map(_DECODERS[record_format].decode, lines))
    except _REFUSED:
        return None
    return CHECKS[record_format](records)


def check_piece(record_format: str, piece: bytes | memoryview, count: int) -> Batch | None:
    """check_lines for a run of count lines framed as one object each (readers.object_lines), decoded at once."""
    try:
        records = _DECODERS[record_format].decode_lines(piece)
    except _REFUSED:
        return None
    return CHECKS[record_format](records) if len(records) == count else None


def _filled(texts: list[str]) -> bool:
    """Whether every text holds more than whitespace."""
    return all(texts) and not any(map(str.isspace, texts))


def _lines(records: list) -> list[bytes]:
    """The canonical lines of typed records (without their newlines, as the full path writes them)."""
    return list(map(_ENCODE, records))


def _sums(values: Iterable[int], count: int, starts: numpy.ndarray) -> numpy.ndarray:
    """The sums of consecutive runs of the count values, the runs starting at starts (none is empty)."""
    return numpy.add.reduceat(numpy.fromiter(values, numpy.int64, count), starts)


def chat(records: list[_Chat]) -> Batch | None:
    """Chats: messages of known roles with content, at least one from the assistant in each record."""
    measured = _measure_chats(records)
    if measured is None:
        return None
    answered, sizes, characters, roles = measured
    canonical = _lines(records)
    # Most chats end with the assistant's turn; otherwise each canonical line is searched for one.
    if not answered and not all(map(contains, canonical, repeat(ASSISTANT_ROLE))):
        return None
    return Batch(canonical, characters, sizes, roles)


def _compiled_measures(records: list[_Chat]) -> tuple[bool, numpy.ndarray, numpy.ndarray, tuple[int, ...]] | None:
    """The measures of chats from the compiled walk (app/datasets/chat_measures.c)."""
    measured = _chat_measures.measure(records, ROLES, ASSISTANT)
    if measured is None:
        return None
    answered, sizes, characters, roles = measured
    return answered, numpy.frombuffer(sizes, numpy.int64), numpy.frombuffer(characters, numpy.int64), roles


def _python_measures(records: list[_Chat]) -> tuple[bool, numpy.ndarray, numpy.ndarray, tuple[int, ...]] | None:
    """None when a content holds only whitespace; else whether every chat ends with the assistant's turn, the
    messages and characters of each, and all the messages per role (in ROLES' order)."""
    conversations = list(map(MESSAGES, records))
    messages = list(chain.from_iterable(conversations))
    contents = list(map(CONTENT, messages))
    if any(map(str.isspace, contents)):
        return None
    sizes, roles = numpy.fromiter(map(len, conversations), numpy.int64, len(records)), list(map(ROLE, messages))
    ends = numpy.cumsum(sizes)
    answered = list(map(roles.__getitem__, (ends - 1).tolist())).count(ASSISTANT) == len(ends)
    characters = _sums(map(len, contents), len(contents), ends - sizes)
    return answered, sizes, characters, tuple(map(roles.count, ROLES))


# The walk over the messages in C where scripts/build_native.py built it, the same in Python otherwise.
_measure_chats = _compiled_measures if _chat_measures is not None else _python_measures


def strings(records: list) -> Batch | None:
    """Records of a format that is a few strings (text, prompt_completion): accepted when every one holds text."""
    rows = list(map(msgspec.structs.astuple, records))
    texts = list(chain.from_iterable(rows))
    if not _filled(texts):
        return None
    starts = numpy.arange(0, len(texts), len(rows[0]))
    return Batch(_lines(records), _sums(map(len, texts), len(texts), starts))


def instruction(records: list[_Instruction]) -> Batch | None:
    """Instructions: instruction and output hold text; input, when given, is any string."""
    instructions, outputs = list(map(INSTRUCTION, records)), list(map(OUTPUT, records))
    if not _filled(instructions) or not _filled(outputs):
        return None
    for record in records:
        if not record.input:
            record.input = msgspec.UNSET
    characters = [len(one) + len(two) + (len(record.input) if record.input else 0)
                  for one, two, record in zip(instructions, outputs, records, strict=True)]
    return Batch(_lines(records), numpy.array(characters, numpy.int64))


# The checks of decoded records, by format (preference pairs have none: the full path reads them).
CHECKS = {"chat": chat, "instruction": instruction, "prompt_completion": strings, "text": strings}
