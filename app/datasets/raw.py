"""What every reader yields: a record as read (its line and parsed value), or the problem that stopped it."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """What is wrong with a record (or the whole file), where."""

    line: int
    kind: str
    message: str

    def as_dict(self) -> dict:
        """The problem as the validation report lists it."""
        return {"line": self.line, "kind": self.kind, "message": self.message}


@dataclass(frozen=True)
class RawRecord:
    """One record as read: a parsed value, or the problem that prevented parsing it."""

    line: int
    value: object = None
    problem: Problem | None = None
    # A fatal problem ends the file: nothing after it can be read reliably.
    fatal: bool = False
    # Its text holds at most MAX_DEPTH brackets, so it cannot nest deeper: the depth walk can be skipped.
    shallow: bool = False


def problem_record(line: int, kind: str, message: str, fatal: bool = False) -> RawRecord:
    """A record that could not be read."""
    return RawRecord(line, problem=Problem(line, kind, message), fatal=fatal)
