"""Statistics of a dataset that matter for training: sizes, token lengths, duplicates, long examples.

Memory stays fixed whatever the number of records: lengths are kept as a count per length value, and
duplicates are found exactly up to EXACT_DUPLICATES records, then by a fixed-size Bloom filter.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import sys
import zlib
from array import array
from collections import Counter
from itertools import repeat
from operator import add, floordiv, lshift, mul, or_

import orjson

from trainer.records import ROLES, texts

# Without a tokenizer available offline, tokens are estimated: BPE tokenizers of current models
# average about four characters of English per token, and a chat template adds a few per message.
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
ESTIMATE_NOTE = "estimated as characters ÷ 4, plus 4 per chat message (no tokenizer is available offline)"
# 20,000 fingerprints in a set take about 2 MiB; past them, a 2 MiB filter misses no duplicate and counts a false
# one for about 1 record in 1,000 at a million records. It is blocked: a record sets a bit in each quarter of two
# 64-bit words (one of 4,096 masks each), so a lookup is two word reads, not the six bit probes of a plain filter
# (~6 µs a record in Python, more than the parser takes).
EXACT_DUPLICATES = 20_000
WORD_INDEX_BITS = 18
FILTER_WORDS = 1 << WORD_INDEX_BITS
WORD_INDEX = FILTER_WORDS - 1
MASK_BITS = 4
MASK_INDEX_BITS = 12
MASK_INDEX = (1 << MASK_INDEX_BITS) - 1
# A byte's low four bits choose the bit of a mask's 16-bit quarter; these give the quarter's low and high byte.
QUARTER_LOW_BYTE = bytes(1 << (value & 15) & 0xFF for value in range(256))
QUARTER_HIGH_BYTE = bytes(1 << (value & 15) >> 8 for value in range(256))


def fingerprints(lines: list[bytes]) -> list[int]:
    """Each canonical line's 64-bit fingerprint: its CRC-32 and, above, its Adler-32. Both are C calls over the
    batch (a keyed hash() would make two validations of one file count differently), and a file's count
    is the same on every run and machine."""
    return list(map(or_, map(zlib.crc32, lines), map(lshift, map(zlib.adler32, lines), repeat(32))))


APPROXIMATE_NOTE = (f"exact for the first {EXACT_DUPLICATES} records, then counted with a probabilistic filter "
                    "that may take a few distinct records for duplicates")


def percentile(counts: dict[int, int], fraction: float) -> int:
    """The nearest-rank percentile of values given as a count per value."""
    total = sum(counts.values())
    if not total:
        return 0
    rank, seen = max(1, math.ceil(fraction * total)), 0
    for value in sorted(counts):
        seen += counts[value]
        if seen >= rank:
            return value
    return max(counts)


class DuplicateCounter:
    """Counts records seen before: a set of fingerprints up to a cap, then a Bloom filter of fixed size."""

    def __init__(self, exact: int = EXACT_DUPLICATES):
        """Keep up to exact fingerprints before switching to the filter."""
        self.exact, self.seen, self.words = exact, set(), None
        self.duplicates = 0

    def add(self, fingerprint: int) -> None:
        """Count a 64-bit fingerprint as a duplicate if it was added before (possibly wrongly, once the filter is
        in use)."""
        self.add_all([fingerprint])

    def add_all(self, fingerprints: list[int]) -> None:
        """add() each fingerprint in turn; while the set has room, in one call."""
        while fingerprints and self.words is None:
            # The set switches to the filter once it holds more than exact: never inside a slice.
            room = self.exact + 1 - len(self.seen)
            taken, fingerprints, size = fingerprints[:room], fingerprints[room:], len(self.seen)
            self.seen.update(taken)
            self.duplicates += len(taken) - (len(self.seen) - size)
            if len(self.seen) > self.exact:
                self._switch_to_filter()
        if fingerprints:
            self.duplicates += self._set_all(fingerprints)

    def _switch_to_filter(self) -> None:
        """Move the fingerprints seen so far into the filter."""
        self.words, self.masks = array("Q", [0]) * FILTER_WORDS, _masks()  # no 2 MiB temporary
        self._set_all(self.seen)
        self.seen = set()

    def _set_all(self, fingerprints) -> int:
        """Set each fingerprint's bits in its two words; how many had them all set already."""
        # One by one (C-level maps over the batch measured slower): this loop is most of the time validation
        # spends on a record once the filter is in use.
        words, masks, found = self.words, self.masks, 0
        for fingerprint in fingerprints:
            first, second = fingerprint & WORD_INDEX, fingerprint >> WORD_INDEX_BITS & WORD_INDEX
            first_mask = masks[fingerprint >> 2 * WORD_INDEX_BITS & MASK_INDEX]
            second_mask = masks[fingerprint >> 2 * WORD_INDEX_BITS + MASK_INDEX_BITS & MASK_INDEX]
            found += words[first] & first_mask == first_mask and words[second] & second_mask == second_mask
            words[first] |= first_mask
            words[second] |= second_mask
        return found

    @property
    def approximate(self) -> bool:
        """Whether the count came from the filter."""
        return self.words is not None


@functools.cache
def _masks() -> array:
    """The filter's masks, the same in every process: one bit in each 16-bit quarter of the word (so MASK_BITS
    distinct bits), its place in the quarter from a fixed pseudo-random stream; built by byte translations."""
    places = hashlib.shake_128(b"finetune-studio duplicate filter").digest(MASK_BITS * (MASK_INDEX + 1))
    quarters = bytearray(2 * len(places))
    low, high = places.translate(QUARTER_LOW_BYTE), places.translate(QUARTER_HIGH_BYTE)
    quarters[0::2], quarters[1::2] = (low, high) if sys.byteorder == "little" else (high, low)
    return array("Q", quarters)


def canonical_line(record: dict) -> bytes:
    """One canonical record as a line of the canonical file: compact UTF-8 JSON, keys in the canonical order
    (orjson; the standard library for what it refuses: integers beyond 64 bits, and lone surrogates, which
    UTF-8 cannot hold and are written escaped)."""
    try:
        return orjson.dumps(record) + b"\n"
    except TypeError:
        text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode() + b"\n"
    except UnicodeEncodeError:
        return json.dumps(record, separators=(",", ":")).encode() + b"\n"


class StatsAccumulator:
    """Collects what the statistics need, one canonical record at a time, in memory that does not grow."""

    def __init__(self, max_seq_length: int, exact_duplicates: int = EXACT_DUPLICATES):
        """Start empty; examples longer than max_seq_length tokens are counted."""
        self.max_seq_length = max_seq_length
        self.token_lengths: Counter[int] = Counter()
        self.characters = 0
        self.messages: Counter[int] = Counter()
        self.roles = dict.fromkeys(ROLES, 0)
        self.duplicates = DuplicateCounter(exact_duplicates)

    def add(self, record: dict, line: bytes | None = None) -> None:
        """Account for one valid canonical record (line: its canonical line, when it is written already)."""
        characters, messages = sum(len(text) for text in texts(record)), record.get("messages")
        tokens = -(-characters // CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * len(messages or ())
        self.token_lengths[tokens] += 1
        self.characters += characters
        if messages is not None:
            self.messages[len(messages)] += 1
            for message in messages:
                self.roles[message["role"]] += 1
        self.duplicates.add(fingerprints([line or canonical_line(record)])[0])

    def add_all(self, lines: list[bytes], characters: list[int], sizes: list[int] | None = None,
                roles: tuple[int, ...] | None = None) -> None:
        """Account for valid records given as their canonical lines and characters of text, and for chats the
        messages of each and all their messages per role (in ROLES' order)."""
        # In C-level calls over the batch: the fast path hands over a few hundred records at a time.
        tokens = map(floordiv, map(add, characters, repeat(CHARS_PER_TOKEN - 1)), repeat(CHARS_PER_TOKEN))
        if sizes is not None:
            tokens = map(add, tokens, map(mul, sizes, repeat(TOKENS_PER_MESSAGE)))
            self.messages.update(sizes)
            for role, count in zip(ROLES, roles, strict=True):
                self.roles[role] += count
        self.token_lengths.update(tokens)
        self.characters += sum(characters)
        # The fingerprint is of the canonical line, which the fast path writes without building a dict.
        self.duplicates.add_all(fingerprints(lines))

    def result(self) -> dict:
        """The statistics as stored with the dataset."""
        lengths, examples = self.token_lengths, sum(self.token_lengths.values())
        total = sum(length * count for length, count in lengths.items())
        return {
            "examples": examples,
            "characters": self.characters,
            "tokens": {"total": total, "method": "estimate", "note": ESTIMATE_NOTE},
            "example_tokens": {"min": min(lengths, default=0), "p50": percentile(lengths, 0.5),
                               "p95": percentile(lengths, 0.95), "max": max(lengths, default=0),
                               "mean": round(total / examples, 1) if examples else 0},
            "messages_per_example": self._messages_summary(),
            "roles": {role: count for role, count in self.roles.items() if count} or None,
            **self._duplicates_summary(),
            "max_seq_length": self.max_seq_length,
            "over_max_seq_length": sum(count for length, count in lengths.items() if length > self.max_seq_length),
        }

    def _duplicates_summary(self) -> dict:
        """The duplicate count and how it was counted."""
        if self.duplicates.approximate:
            return {"duplicates": self.duplicates.duplicates, "duplicates_method": "approximate",
                    "duplicates_note": APPROXIMATE_NOTE}
        return {"duplicates": self.duplicates.duplicates, "duplicates_method": "exact"}

    def _messages_summary(self) -> dict | None:
        """Messages per chat example, or None for other formats."""
        if not self.messages:
            return None
        count = sum(self.messages.values())
        mean = sum(size * times for size, times in self.messages.items()) / count
        return {"min": min(self.messages), "mean": round(mean, 2), "max": max(self.messages)}
