"""Statistics of preference pairs: pairs, lengths of the prompt and of each answer, length bias, pairs too long."""
from __future__ import annotations

import math
from collections import Counter

from app.datasets.stats import CHARS_PER_TOKEN, TOKENS_PER_MESSAGE, percentile

SIDES = ("prompt", "chosen", "rejected")
# Answers within this many estimated tokens of each other count as equally long for the length-bias hint.
SAME_LENGTH_TOKENS = 0


def side_tokens(messages: list[dict]) -> int:
    """The estimated tokens of one side of a canonical pair."""
    characters = sum(len(message["content"]) for message in messages)
    return math.ceil(characters / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * len(messages)


class PairStats:
    """Lengths of each side as counts per length (memory that does not grow), and how often chosen is longer."""

    def __init__(self, max_seq_length: int):
        """Start empty; a pair whose prompt and longer answer exceed max_seq_length tokens is counted."""
        self.max_seq_length = max_seq_length
        self.lengths = {side: Counter() for side in SIDES}
        self.chosen_longer = self.same_length = self.over = 0

    def add(self, record: dict) -> None:
        """Account for one canonical pair."""
        tokens = {side: side_tokens(record[side]) for side in SIDES}
        for side, count in tokens.items():
            self.lengths[side][count] += 1
        difference = tokens["chosen"] - tokens["rejected"]
        self.chosen_longer += difference > SAME_LENGTH_TOKENS
        self.same_length += abs(difference) <= SAME_LENGTH_TOKENS
        self.over += tokens["prompt"] + max(tokens["chosen"], tokens["rejected"]) > self.max_seq_length

    @property
    def pairs(self) -> int:
        """How many pairs were added."""
        return sum(self.lengths["prompt"].values())

    def result(self) -> dict | None:
        """The pair statistics as stored with the dataset, or None when no pair was added."""
        if not self.pairs:
            return None
        summary = {side: _summary(counts) for side, counts in self.lengths.items()}
        return {"pairs": self.pairs, "prompt_tokens": summary["prompt"], "chosen_tokens": summary["chosen"],
                "rejected_tokens": summary["rejected"], "chosen_longer": self.chosen_longer,
                "chosen_longer_fraction": round(self.chosen_longer / self.pairs, 3),
                "same_length": self.same_length, "over_max_seq_length": self.over}


def _summary(counts: Counter) -> dict:
    """min, median, mean and max of lengths given as a count per length."""
    total = sum(length * times for length, times in counts.items())
    return {"min": min(counts), "p50": percentile(counts, 0.5), "mean": round(total / sum(counts.values()), 1),
            "max": max(counts)}


def merged(stats: dict, pairs: PairStats) -> dict:
    """The dataset's statistics with the pairs' added; a pair is too long when the prompt with either answer is."""
    found = pairs.result()
    if found is None:
        return stats
    return {**stats, "preference": found, "over_max_seq_length": found["over_max_seq_length"]}
