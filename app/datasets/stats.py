"""Statistics of a dataset that matter for training: sizes, token lengths, duplicates, long examples."""
from __future__ import annotations

import hashlib
import json
import math
from collections import Counter

from trainer.records import texts

# Without a tokenizer available offline, tokens are estimated: BPE tokenizers of current models
# average about four characters of English per token, and a chat template adds a few per message.
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
ESTIMATE_NOTE = "estimated as characters ÷ 4, plus 4 per chat message (no tokenizer is available offline)"


def estimate_tokens(record: dict) -> int:
    """The estimated token count of one canonical record."""
    characters = sum(len(text) for text in texts(record))
    overhead = TOKENS_PER_MESSAGE * len(record.get("messages", ()))
    return math.ceil(characters / CHARS_PER_TOKEN) + overhead


def percentile(sorted_values: list[int], fraction: float) -> int:
    """The nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


class StatsAccumulator:
    """Collects what the statistics need, one canonical record at a time."""

    def __init__(self, max_seq_length: int):
        """Start empty; examples longer than max_seq_length tokens are counted."""
        self.max_seq_length = max_seq_length
        self.token_lengths: list[int] = []
        self.characters = 0
        self.messages: list[int] = []
        self.roles: Counter[str] = Counter()
        self.seen: set[bytes] = set()
        self.duplicates = 0

    def add(self, record: dict) -> None:
        """Account for one valid record."""
        self.token_lengths.append(estimate_tokens(record))
        self.characters += sum(len(text) for text in texts(record))
        if "messages" in record:
            self.messages.append(len(record["messages"]))
            self.roles.update(message["role"] for message in record["messages"])
        digest = hashlib.blake2b(json.dumps(record, sort_keys=True).encode(), digest_size=16).digest()
        if digest in self.seen:
            self.duplicates += 1
        self.seen.add(digest)

    def result(self) -> dict:
        """The statistics as stored with the dataset."""
        lengths = sorted(self.token_lengths)
        return {
            "examples": len(lengths),
            "characters": self.characters,
            "tokens": {"total": sum(lengths), "method": "estimate", "note": ESTIMATE_NOTE},
            "example_tokens": {"min": lengths[0] if lengths else 0, "p50": percentile(lengths, 0.5),
                               "p95": percentile(lengths, 0.95), "max": lengths[-1] if lengths else 0,
                               "mean": round(sum(lengths) / len(lengths), 1) if lengths else 0},
            "messages_per_example": self._messages_summary(),
            "roles": dict(self.roles) or None,
            "duplicates": self.duplicates,
            "max_seq_length": self.max_seq_length,
            "over_max_seq_length": sum(1 for length in lengths if length > self.max_seq_length),
        }

    def _messages_summary(self) -> dict | None:
        """Messages per chat example, or None for other formats."""
        if not self.messages:
            return None
        return {"min": min(self.messages), "mean": round(sum(self.messages) / len(self.messages), 2),
                "max": max(self.messages)}
