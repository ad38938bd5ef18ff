"""Validate a whole dataset file in one streaming pass: problems with lines, statistics, canonical records."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from app.datasets import fast_records, pair_stats, readers
from app.datasets.readers import Problem, RawRecord
from app.datasets.shape import shape_problem
from app.datasets.stats import StatsAccumulator, canonical_line
from trainer import records

MIN_EXAMPLES = 10
MAX_LISTED_PROBLEMS = 100
# A message quotes keys and values of the record; a record's keys can be as long as the record itself.
MAX_MESSAGE_CHARS = 300
# Lines the fast check takes at once (a batch with a line it refuses is halved until that line stands alone).
BATCH_LINES = 1024


@dataclass
class ValidationOptions:
    """How to read and judge a file."""

    file_format: str
    max_record_bytes: int = 1024 * 1024
    skip_invalid: bool = False
    max_seq_length: int = 2048


@dataclass
class ValidationReport:
    """What validation found: problems, the record format, statistics, and whether the data is usable."""

    file_format: str
    record_format: str | None = None
    valid: int = 0
    invalid: int = 0
    problems: list[Problem] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    # Doubts about valid records (a pair with identical answers): listed like problems, but the record is kept.
    warnings: list[Problem] = field(default_factory=list)
    warning_counts: Counter = field(default_factory=Counter)
    stats: dict | None = None
    skip_invalid: bool = False
    # The file could not be read to its end (broken JSON array, CSV header of no known format…).
    fatal: bool = False

    def add_problem(self, problem: Problem, record_counted: bool = True) -> None:
        """Record a problem; the first MAX_LISTED_PROBLEMS are kept in full, all are counted."""
        if len(self.problems) < MAX_LISTED_PROBLEMS:
            if len(problem.message) > MAX_MESSAGE_CHARS:
                problem = Problem(problem.line, problem.kind, problem.message[:MAX_MESSAGE_CHARS - 1] + "…")
            self.problems.append(problem)
        self.counts[problem.kind] += 1
        self.invalid += record_counted

    def add_warning(self, warning: Problem) -> None:
        """Record a warning; the first MAX_LISTED_PROBLEMS are kept, all are counted."""
        if len(self.warnings) < MAX_LISTED_PROBLEMS:
            self.warnings.append(warning)
        self.warning_counts[warning.kind] += 1

    @property
    def ready(self) -> bool:
        """Whether the dataset can be trained on."""
        usable = self.invalid == 0 or self.skip_invalid
        return usable and self.valid >= MIN_EXAMPLES and not self.fatal

    def as_dict(self) -> dict:
        """The report as stored with the dataset and shown by the API."""
        return {"errors": [p.as_dict() for p in self.problems], "error_counts": dict(self.counts),
                "invalid_records": self.invalid, "dropped": self.invalid if self.skip_invalid else 0,
                "truncated": sum(self.counts.values()) > len(self.problems), "fatal": self.fatal,
                "warnings": [w.as_dict() for w in self.warnings], "warning_counts": dict(self.warning_counts)}


def validate(chunks: Iterable[bytes], options: ValidationOptions,
             emit: Callable[[list[bytes]], None]) -> ValidationReport:
    """Read every record, judge it, and pass the valid ones to emit as canonical lines (a list at a time)."""
    report = ValidationReport(file_format=options.file_format, skip_invalid=options.skip_invalid)
    valid = _ValidRecords(options.max_seq_length, emit)
    judge = _RecordJudge(report, options.file_format)
    if options.file_format == "jsonl":
        _read_jsonl(chunks, options.max_record_bytes, judge, valid)
    else:
        for raw in readers.read_records(chunks, options.file_format, options.max_record_bytes):
            valid.add(judge.check(raw), report.record_format)
            if raw.fatal or judge.stop:
                report.fatal = True
                break
    _check_totals(report)
    report.stats = pair_stats.merged(valid.stats.result(), valid.pairs)
    return report


def _read_jsonl(chunks: Iterable[bytes], max_record_bytes: int, judge: _RecordJudge, valid: _ValidRecords) -> None:
    """Every line of a JSONL file: the fast check where it accepts the lines, the full path for all others."""
    lines_reader = _JsonlLines(judge, valid, max_record_bytes)
    for piece in readers.line_pieces(iter(chunks), max_record_bytes):
        lines_reader.read(piece)


class _JsonlLines:
    """Takes JSONL lines a run at a time: the fast check on the whole run when its lines are framed as one object
    each, else on batches of its lines, then on their halves, down to the lines it refuses, which the full path
    reads and judges as it always has."""

    def __init__(self, judge: _RecordJudge, valid: _ValidRecords, max_record_bytes: int):
        """Judge into judge's report; valid records go to valid."""
        self.judge, self.valid, self.max_record_bytes = judge, valid, max_record_bytes
        # The fast check runs once the format is known: the full path learns it from the first record.
        self.record_format: str | None = None
        self.number = 1  # of the next line

    def read(self, piece: bytes | memoryview | None) -> None:
        """The next run of lines (None: one line too long to read)."""
        if piece is not None and self.record_format is not None and self._whole_run(piece):
            return
        lines = readers.piece_lines(piece, self.max_record_bytes)
        # Longer lines may hold too many values: the full path scans their shape before parsing them.
        short = max((len(line) for line in lines if line is not None), default=0) < fast_records.MAX_LINE_BYTES
        for start in range(0, len(lines), BATCH_LINES):
            self.take(self.number + start, lines[start:start + BATCH_LINES], short)
        self.number += len(lines)

    def _whole_run(self, piece: bytes | memoryview) -> bool:
        """Whether the fast check took every line of the run at once."""
        framed = readers.object_lines(piece)
        if framed is None or framed[1] >= min(fast_records.MAX_LINE_BYTES, self.max_record_bytes + 1):
            return False
        accepted = fast_records.check_piece(self.record_format, piece, framed[0])
        if accepted is None:
            return False
        self._accept(accepted)
        self.number += framed[0]
        return True

    def take(self, first: int, lines: list[bytes | None], short: bool = True) -> None:
        """Lines numbered from first, in order (a bad line costs its batch a few halvings, not the fast check);
        short: none is long enough to need the full path's shape check."""
        if self.record_format is None:
            self._until_format_known(first, lines, short)
        elif not short:
            for offset, line in enumerate(lines):
                self._full_path(first + offset, line)
        elif (accepted := fast_records.check_lines(self.record_format, lines)) is not None:
            self._accept(accepted)
        elif len(lines) > 1:
            half = len(lines) // 2
            self.take(first, lines[:half])
            self.take(first + half, lines[half:])
        else:
            self._full_path(first, lines[0])

    def _accept(self, batch: fast_records.Batch) -> None:
        """Count records the fast check accepted as valid and pass them on."""
        self.judge.report.valid += len(batch.lines)
        self.valid.add_batch(batch)

    def _until_format_known(self, first: int, lines: list[bytes | None], short: bool) -> None:
        """The full path for each line until a record sets the file's format; the rest is taken as usual."""
        for offset, line in enumerate(lines):
            self._full_path(first + offset, line)
            if self.record_format is not None:
                if offset + 1 < len(lines):
                    self.take(first + offset + 1, lines[offset + 1:], short)
                return

    def _full_path(self, number: int, line: bytes | None) -> None:
        """Read and judge one line as the full path does."""
        raw = readers.jsonl_record(number, line, self.max_record_bytes)
        if raw is not None:
            report = self.judge.report
            self.valid.add(self.judge.check(raw), report.record_format)
            # Preference pairs have no fast check: their files stay on the full path.
            if report.record_format in fast_records.CHECKS:
                self.record_format = report.record_format


class _ValidRecords:
    """Where valid records go: the statistics, the pair statistics and the canonical file."""

    def __init__(self, max_seq_length: int, emit: Callable[[list[bytes]], None]):
        """Collect into fresh statistics and pass the lines to emit."""
        self.stats, self.pairs = StatsAccumulator(max_seq_length), pair_stats.PairStats(max_seq_length)
        self.emit = emit

    def add(self, canonical: dict | None, record_format: str | None) -> None:
        """Account for a record the full path judged (None when it was not valid)."""
        if canonical is None:
            return
        line = canonical_line(canonical)
        self.stats.add(canonical, line)
        if record_format in records.PAIR_FORMATS:
            self.pairs.add(canonical)
        self.emit([line])

    def add_batch(self, batch: fast_records.Batch) -> None:
        """Account for records the fast check accepted."""
        self.stats.add_all(*batch)
        self.emit(batch.lines)


def _check_totals(report: ValidationReport) -> None:
    """File-level problems: nothing at all, or too few examples."""
    if report.valid == 0 and report.invalid == 0:
        report.add_problem(Problem(1, "empty_file", "the file holds no records"), record_counted=False)
    elif report.valid < MIN_EXAMPLES and not report.fatal:
        report.add_problem(Problem(1, "too_few_examples",
                                   f"{report.valid} valid examples; at least {MIN_EXAMPLES} are needed"),
                           record_counted=False)


class _RecordJudge:
    """Checks records one by one against the format the first readable record set."""

    def __init__(self, report: ValidationReport, file_format: str):
        """Judge into report."""
        self.report, self.file_format, self.stop = report, file_format, False
        self.format_line: int | None = None

    def check(self, raw: RawRecord) -> dict | None:
        """The canonical record when raw is valid; otherwise its problems go to the report."""
        if raw.problem is not None:
            self.report.add_problem(raw.problem)
            return None
        found = self._cell_problems(raw.value)
        value = records.from_csv_row(raw.value) if self.file_format == "csv" and not found else raw.value
        found = found or self._problems(raw.line, value, raw.shallow)
        if found:
            # A CSV header that fits no format is reported where it is: on line 1.
            line = 1 if self.stop else raw.line
            for kind, message in found:
                self.report.add_problem(Problem(line, kind, message), record_counted=False)
            self.report.invalid += 1
            return None
        self.report.valid += 1
        for kind, message in records.warnings(value, self.report.record_format):
            self.report.add_warning(Problem(raw.line, kind, message))
        return records.canonical(value, self.report.record_format)

    def _cell_problems(self, value) -> list[tuple[str, str]]:
        """A CSV messages cell that would be too costly to parse as JSON."""
        cell = value.get("messages") if self.file_format == "csv" else None
        found = shape_problem(cell) if isinstance(cell, str) else None
        return [found] if found else []

    def _problems(self, line: int, value, shallow: bool = False) -> list[tuple[str, str]]:
        """What is wrong with one parsed value (shallow: its text was too short of brackets to nest too deep)."""
        if not isinstance(value, dict):
            return [("not_object", f"a record must be a JSON object, not {records.json_type(value)}")]
        if not shallow and records.depth(value) > records.MAX_DEPTH:
            return [("too_deep", f"the record nests deeper than {records.MAX_DEPTH} levels")]
        detected = records.detect(value)
        if detected is None:
            return self._unknown_format(line, value)
        if self.report.record_format is None:
            self.report.record_format, self.format_line = detected, line
        elif detected != self.report.record_format:
            return [("mixed_formats", f"this record is {detected} but the file is "
                                      f"{self.report.record_format} (from line {self.format_line})")]
        return records.problems(value, detected)

    def _unknown_format(self, line: int, value: dict) -> list[tuple[str, str]]:
        """The problem of a record in no known format; a CSV header that fits none ends the file."""
        keys = ", ".join(key[:40] for key in sorted(value)[:10]) or "none"
        if self.file_format == "csv" and self.report.valid == 0 and self.report.invalid == 0:
            self.stop = True
            return [("missing_columns", f"the header has columns {keys}; expected {records.EXPECTED}")]
        return [("unknown_format", f"the record has keys {keys}; expected {records.EXPECTED}")]
