"""Statistics of a dataset that matter for training: sizes, token lengths, duplicates, long examples.

Memory stays fixed whatever the number of records: lengths are kept as a count per length value, and
duplicates are found exactly up to EXACT_DUPLICATES records, then by a fixed-size Bloom filter.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections import Counter

import orjson

from trainer.records import texts

# Without a tokenizer available offline, tokens are estimated: BPE tokenizers of current models
# average about four characters of English per token, and a chat template adds a few per message.
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
ESTIMATE_NOTE = "estimated as characters ÷ 4, plus 4 per chat message (no tokenizer is available offline)"
# 20,000 digests in a set take about 2 MiB; past them, a 2 MiB filter with 6 probes misses no duplicate and
# counts a false one for about 1 record in 1,300 at a million records.
EXACT_DUPLICATES = 20_000
FILTER_BITS = 1 << 24
FILTER_PROBES = 6
APPROXIMATE_NOTE = (f"exact for the first {EXACT_DUPLICATES} records, then counted with a probabilistic filter "
                    "that may take a few distinct records for duplicates")


def estimate_tokens(record: dict) -> int:
    """The estimated token count of one canonical record."""
    characters = sum(len(text) for text in texts(record))
    overhead = TOKENS_PER_MESSAGE * len(record.get("messages", ()))
    return math.ceil(characters / CHARS_PER_TOKEN) + overhead


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
    """Counts records seen before: a set of digests up to a cap, then a Bloom filter of fixed size."""

    def __init__(self, exact: int = EXACT_DUPLICATES):
        """Keep up to exact digests before switching to the filter."""
        self.exact, self.seen, self.filter = exact, set(), None
        self.duplicates = 0

    def add(self, digest: bytes) -> None:
        """Count digest as a duplicate if it was added before (possibly wrongly, once the filter is in use)."""
        if self.filter is None:
            self.duplicates += digest in self.seen
            self.seen.add(digest)
            if len(self.seen) > self.exact:
                self.filter = bytearray(FILTER_BITS // 8)
                for known in self.seen:
                    self._set(known)
                self.seen = set()
            return
        self.duplicates += self._set(digest)

    def _set(self, digest: bytes) -> bool:
        """Set digest's bits; whether they were all set already."""
        first, second = int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little") | 1
        present = True
        for probe in range(FILTER_PROBES):
            bit = (first + probe * second) % FILTER_BITS
            byte, mask = bit >> 3, 1 << (bit & 7)
            present = present and bool(self.filter[byte] & mask)
            self.filter[byte] |= mask
        return present

    @property
    def approximate(self) -> bool:
        """Whether the count came from the filter."""
        return self.filter is not None


def canonical_bytes(record: dict) -> bytes:
    """The record as sorted-key JSON bytes, for its duplicate hash (orjson; the standard library for integers
    beyond 64 bits, which orjson does not write)."""
    try:
        return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return json.dumps(record, sort_keys=True).encode()


class StatsAccumulator:
    """Collects what the statistics need, one canonical record at a time, in memory that does not grow."""

    def __init__(self, max_seq_length: int, exact_duplicates: int = EXACT_DUPLICATES):
        """Start empty; examples longer than max_seq_length tokens are counted."""
        self.max_seq_length = max_seq_length
        self.token_lengths: Counter[int] = Counter()
        self.characters = 0
        self.messages: Counter[int] = Counter()
        self.roles: Counter[str] = Counter()
        self.duplicates = DuplicateCounter(exact_duplicates)

    def add(self, record: dict) -> None:
        """Account for one valid record."""
        self.token_lengths[estimate_tokens(record)] += 1
        self.characters += sum(len(text) for text in texts(record))
        if "messages" in record:
            self.messages[len(record["messages"])] += 1
            self.roles.update(message["role"] for message in record["messages"])
        self.duplicates.add(hashlib.blake2b(canonical_bytes(record), digest_size=16).digest())

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
            "roles": dict(self.roles) or None,
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
