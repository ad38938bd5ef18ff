"""The shape of a JSON text before it is parsed: how many values it holds and how deeply it nests.

Parsing builds a Python object per value, dozens of bytes each, so a 1 MiB record of a million tiny values
would cost ~60 MiB: such a record is refused from its text (C-speed string operations), never parsed.
"""
from __future__ import annotations

import re

from trainer.records import MAX_DEPTH

# A record of this many values (objects, arrays and array items or object members) takes a few MiB once
# parsed; a chat of ten thousand messages stays well below it.
MAX_VALUES = 50_000
# Possessive quantifiers throughout: with backtracking kept open, re's own stack grows by ~150 bytes per
# character of a long string (300 MB for a 2 MB one); possessive ones keep it flat.
STRING = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
BRACKET = re.compile(r"[\[\]{}]")
# Everything up to the next bracket outside a string: text and whole strings, matched in one C-level step.
UP_TO_BRACKET = re.compile(r'(?:[^"\[\]{}]++|"[^"\\]*+(?:\\.[^"\\]*+)*+")*+', re.DOTALL)


def shape_problem(text: str) -> tuple[str, str] | None:
    """(kind, message) when the JSON text holds too many values or nests too deeply to be parsed; else None."""
    # A value takes at least two characters with its separator, so a shorter text holds fewer values than the
    # limit, and json.loads measures its nesting safely (RecursionError, then records.depth): skip the scan.
    if len(text) < 2 * MAX_VALUES:
        return None
    bare = STRING.sub('""', text)
    containers = bare.count("{") + bare.count("[")
    # Fewer containers than the limit cannot nest deeper than it: most records skip the walk below.
    if containers > MAX_DEPTH and _nests_too_deep(bare):
        return "too_deep", f"the record nests deeper than {MAX_DEPTH} levels"
    if containers + bare.count(",") > MAX_VALUES:
        return "too_complex", f"the record holds more than {MAX_VALUES} values"
    return None


def _nests_too_deep(bare: str) -> bool:
    """Whether the brackets of a text without strings nest deeper than MAX_DEPTH (in its first MAX_VALUES)."""
    # A text with more brackets than that is refused as too complex anyway.
    level = 0
    for count, found in enumerate(BRACKET.finditer(bare)):
        level += 1 if found.group() in "[{" else -1
        if level > MAX_DEPTH:
            return True
        if count >= MAX_VALUES:
            return False
    return False


def value_end(text: str, start: int) -> int | None:
    """Where the object or array starting at text[start] ends; None when the text stops before its end."""
    level, position = 0, start
    while True:
        position = UP_TO_BRACKET.match(text, position).end()
        if position >= len(text) or text[position] == '"':  # the text ends, or ends inside a string
            return None
        level += 1 if text[position] in "[{" else -1
        position += 1
        if level <= 0:
            return position
