"""Statistics of a dataset that matter for training: sizes, token lengths, duplicates, long examples.

Memory stays fixed whatever the number of records: lengths are kept as a count per length value, and
duplicates are found exactly up to EXACT_DUPLICATES records, then by a fixed-size Bloom filter.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
from collections import Counter

import numpy
import orjson
from xxhash import xxh3_64_intdigest

from trainer.records import ROLES, texts

# Without a tokenizer available offline, tokens are estimated: BPE tokenizers of current models
# average about four characters of English per token, and a chat template adds a few per message.
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
ESTIMATE_NOTE = "estimated as characters ÷ 4, plus 4 per chat message (no tokenizer is available offline)"
# The first 262,144 fingerprints (2 MiB) are kept and counted exactly, by sorting them once; past them, a 2 MiB
# filter misses no duplicate and counts a false one for about 1 record in 1,000 at a million records. It is
# blocked: a record sets a bit in each quarter of two 64-bit words (one of 4,096 masks each), so a lookup is two
# word reads, not the six bit probes of a plain filter.
EXACT_DUPLICATES = 1 << 18
WORD_INDEX_BITS = 18
FILTER_WORDS = 1 << WORD_INDEX_BITS
WORD_INDEX = FILTER_WORDS - 1
MASK_BITS = 4
MASK_INDEX_BITS = 12
MASK_INDEX = (1 << MASK_INDEX_BITS) - 1
# The filter takes fingerprints a block at a time, in numpy (one by one in Python cost more than parsing the
# record). Blocks are counted from the first fingerprint the filter took, whatever the batches they came in, so
# a file's count is the same however its records were read.
FILTER_BLOCK = 8192
# Records whose lengths the fast path's statistics count at once (two arrays of 8-byte numbers each).
STATS_BLOCK = 65_536


def fingerprint(line: bytes) -> int:
    """A canonical line's 64-bit fingerprint: its XXH3 hash, unseeded (a keyed hash() would make two validations of
    one file count differently), so a file's count is the same on every run and machine."""
    return xxh3_64_intdigest(line)


def fingerprints(lines: list[bytes]) -> numpy.ndarray:
    """fingerprint() of each line, as 64-bit numbers."""
    return numpy.fromiter(map(xxh3_64_intdigest, lines), numpy.uint64, len(lines))


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
    """Counts records seen before: exactly for the first fingerprints (up to a cap), then with a Bloom filter of
    fixed size."""

    def __init__(self, exact: int = EXACT_DUPLICATES):
        """Count the first exact fingerprints exactly, the others with the filter."""
        self.exact, self.words, self.found = exact, None, 0
        # The first fingerprints, an array per batch (counted when the cap is reached or the count is read), and
        # those added one at a time since the last array (gathered into one every FILTER_BLOCK).
        self.kept: list[numpy.ndarray] = []
        self.kept_count = 0
        self.singles: list[int] = []
        # Fingerprints waiting for the filter's next block (fewer than FILTER_BLOCK between calls).
        self.pending: list[numpy.ndarray] = []
        self.pending_count = 0

    def add(self, fingerprint: int) -> None:
        """Count a fingerprint as a duplicate if it was added before (possibly wrongly, once the filter is in use)."""
        self.singles.append(fingerprint)
        if len(self.singles) >= FILTER_BLOCK:
            self._take_singles()

    def add_all(self, fingerprints: numpy.ndarray) -> None:
        """add() each fingerprint in turn, in one call."""
        self._take_singles()
        self._take(fingerprints)

    @property
    def duplicates(self) -> int:
        """The records counted as seen before, once every record is added (the last, partial block goes in)."""
        self._take_singles()
        if self.words is None:
            return self.found + self.kept_count - _distinct_sorted(self._kept_sorted())
        self._filter_blocks(self.pending_count)
        return self.found

    @property
    def approximate(self) -> bool:
        """Whether the count came from the filter."""
        self._take_singles()
        return self.words is not None

    def _take_singles(self) -> None:
        """Take the fingerprints added one at a time, as one array."""
        if self.singles:
            values, self.singles = numpy.array(self.singles, numpy.uint64), []
            self._take(values)

    def _take(self, values: numpy.ndarray) -> None:
        """Keep the fingerprints while there is room, and give the filter the others."""
        if self.words is None:
            room = self.exact - self.kept_count
            if room:
                self.kept.append(values[:room])
                self.kept_count += min(room, len(values))
            if len(values) <= room:
                return
            self._switch_to_filter()
            values = values[room:]
        self.pending.append(values)
        self.pending_count += len(values)
        if self.pending_count >= FILTER_BLOCK:
            self._filter_blocks(self.pending_count // FILTER_BLOCK * FILTER_BLOCK)

    def _switch_to_filter(self) -> None:
        """Count the duplicates among the kept fingerprints and move these into the filter."""
        kept, self.kept = self._kept_sorted(), []
        self.found += len(kept) - _distinct_sorted(kept)
        self.words, self.masks = numpy.zeros(FILTER_WORDS, numpy.uint64), _masks()
        for start in range(0, len(kept), FILTER_BLOCK):
            self._set_block(kept[start:start + FILTER_BLOCK])

    def _kept_sorted(self) -> numpy.ndarray:
        """The kept fingerprints as one array, sorted in place (their order does not matter; kept so for the next
        call)."""
        kept = numpy.concatenate(self.kept) if self.kept else numpy.zeros(0, numpy.uint64)
        kept.sort()
        self.kept = [kept]
        return kept

    def _filter_blocks(self, count: int) -> None:
        """Put the first count pending fingerprints into the filter, FILTER_BLOCK at a time."""
        if not count:
            return
        values = numpy.concatenate(self.pending)
        for start in range(0, count, FILTER_BLOCK):
            self.found += self._set_block(values[start:min(start + FILTER_BLOCK, count)])
        self.pending, self.pending_count = [values[count:]], len(values) - count

    def _set_block(self, block: numpy.ndarray) -> int:
        """Set each fingerprint's bits in its two words; how many were duplicates: every one but the first copy of
        each fingerprint whose bits were not all set before the block."""
        places = numpy.concatenate((block & WORD_INDEX, block >> WORD_INDEX_BITS & WORD_INDEX))
        masks = self.masks[numpy.concatenate((block >> 2 * WORD_INDEX_BITS & MASK_INDEX,
                                              block >> 2 * WORD_INDEX_BITS + MASK_INDEX_BITS & MASK_INDEX))]
        words = self.words[places]
        before = words & masks == masks
        new = ~(before[:len(block)] & before[len(block):])
        self.words[places] = words | masks
        _set_lost_bits(self.words, places, masks)
        return len(block) - _distinct(block[new])


def _distinct(values: numpy.ndarray) -> int:
    """How many different values there are (by sorting: numpy.unique's hash table took longer)."""
    return _distinct_sorted(numpy.sort(values))


def _distinct_sorted(ordered: numpy.ndarray) -> int:
    """How many different values an ordered array holds."""
    return int(numpy.count_nonzero(ordered[1:] != ordered[:-1])) + bool(len(ordered))


def _set_lost_bits(words: numpy.ndarray, places: numpy.ndarray, masks: numpy.ndarray) -> None:
    """After words[places] = words[places] | masks: where places repeat, the assignment kept one of the repeats'
    values, so those it left out are set again until none is (numpy's bitwise_or.at does it in one pass, slower)."""
    while len(places):
        lost = words[places] & masks != masks
        places, masks = places[lost], masks[lost]
        words[places] |= masks


@functools.cache
def _masks() -> numpy.ndarray:
    """The filter's masks, the same in every process and machine: one bit in each 16-bit quarter of the word (so
    MASK_BITS distinct bits), its place in the quarter from a fixed pseudo-random stream."""
    places = hashlib.shake_128(b"finetune-studio duplicate filter").digest(MASK_BITS * (MASK_INDEX + 1))
    quarters = numpy.left_shift(1, numpy.frombuffer(places, numpy.uint8) & 15, dtype=numpy.uint16)
    # Quarters in little-endian order whatever the machine's, so a word's value does not depend on it.
    return quarters.astype("<u2").view("<u8").astype(numpy.uint64)


def _count(counter: Counter, values: numpy.ndarray) -> None:
    """Add each value's occurrences to counter."""
    found, times = numpy.unique(values, return_counts=True)
    counter.update(dict(zip(found.tolist(), times.tolist(), strict=True)))


def canonical_line(record: dict) -> bytes:
    """One canonical record as a line of the canonical file, without its newline: compact UTF-8 JSON, keys in the
    canonical order (orjson; the standard library for what it refuses: integers beyond 64 bits, and lone
    surrogates, which UTF-8 cannot hold and are written escaped)."""
    try:
        return orjson.dumps(record)
    except TypeError:
        text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(record, separators=(",", ":")).encode()


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
        # Batches of add_all not counted yet (fewer than STATS_BLOCK records between calls).
        self.pending: list[tuple[numpy.ndarray, numpy.ndarray | None]] = []
        self.pending_records = 0

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
        self.duplicates.add(fingerprint(line or canonical_line(record)))

    def add_all(self, lines: list[bytes], characters: numpy.ndarray, sizes: numpy.ndarray | None = None,
                roles: tuple[int, ...] | None = None) -> None:
        """Account for valid records given as their canonical lines and characters of text, and for chats the
        messages of each and all their messages per role (in ROLES' order)."""
        # Counted in numpy STATS_BLOCK records at a time: the fast path hands over a thousand at a time, and a few
        # numpy calls per batch cost more than the counting.
        self.pending.append((characters, sizes))
        self.pending_records += len(characters)
        if self.pending_records >= STATS_BLOCK:
            self._count_pending()
        for role, count in zip(ROLES, roles or (), strict=False):
            self.roles[role] += count
        # The fingerprint is of the canonical line, which the fast path writes without building a dict.
        self.duplicates.add_all(fingerprints(lines))

    def _count_pending(self) -> None:
        """Count the records add_all left pending: their token lengths, characters and (chats) messages."""
        for chats in (True, False):
            batches = [(characters, sizes) for characters, sizes in self.pending if (sizes is not None) == chats]
            if not batches:
                continue
            characters = numpy.concatenate([characters for characters, _ in batches])
            tokens = -(-characters // CHARS_PER_TOKEN)
            if chats:
                sizes = numpy.concatenate([sizes for _, sizes in batches])
                tokens += TOKENS_PER_MESSAGE * sizes
                _count(self.messages, sizes)
            _count(self.token_lengths, tokens)
            self.characters += int(characters.sum())
        self.pending, self.pending_records = [], 0

    def result(self) -> dict:
        """The statistics as stored with the dataset."""
        self._count_pending()
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
