"""CSV files as records: rows cut from the bytes (quotes respected) and bounded in size before they are parsed.

csv's field size limit bounds one field, not a row, and its reader pulls a whole physical line into memory
first: a 20 MB row of short fields cost hundreds of MB. Rows are therefore split here, a row longer than the
limit is skipped as it streams by (its newlines still counted), and only rows within it reach the csv module.
"""
from __future__ import annotations

import csv
import re
from collections.abc import Iterator

from app.datasets.raw import RawRecord, problem_record
from app.datasets.shape import MAX_VALUES

# Possessive, so that re's stack stays flat on a long quoted field (see app/datasets/shape.py).
QUOTED = re.compile(r'"[^"]*+(?:""[^"]*+)*+"')
FIELD_STARTS = (ord(","), ord("\n"))
BOM = b"\xef\xbb\xbf"


def read_csv(chunks: Iterator[bytes], max_record_bytes: int) -> Iterator[RawRecord]:
    """Rows as dicts keyed by the header row; a row's line is its last physical line."""
    # The limit is process-wide in the csv module; every reader in the Studio wants the same bound.
    csv.field_size_limit(max_record_bytes)
    header = None
    for line, raw in split_csv_rows(chunks, max_record_bytes):
        if raw is None:
            yield problem_record(line, "too_long", f"the row is longer than {max_record_bytes} bytes",
                                 fatal=header is None)
        elif header is None:
            header, found = _header(line, raw)
            if found is not None:
                yield found
                return
        elif raw.strip(b" \t\r"):
            yield _row(line, raw, header)


def _header(line: int, raw: bytes) -> tuple[list[str] | None, RawRecord | None]:
    """The column names, or the fatal problem of a header that cannot be one."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        return None, problem_record(line, "encoding", f"not valid UTF-8 (byte {error.start + 1} of the row)", True)
    if len(text) >= 2 * MAX_VALUES and _width(text) > MAX_VALUES:
        return None, problem_record(line, "csv", f"the header has more than {MAX_VALUES} columns", fatal=True)
    fields, found = _fields(line, text)
    if found is not None:
        return None, problem_record(line, "csv", found.problem.message, fatal=True)
    return [name.strip() for name in fields], None


def _row(line: int, raw: bytes, header: list[str]) -> RawRecord:
    """One row zipped with the header; a row of the wrong width is a problem."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return problem_record(line, "encoding", f"not valid UTF-8 (byte {error.start + 1} of the row)")
    # Estimated before parsing, so a row of half a million fields is never split into as many strings (a
    # row shorter than two characters per field cannot hold more than the limit).
    width = _width(text) if len(text) >= 2 * MAX_VALUES else 0
    if width <= MAX_VALUES:
        fields, found = _fields(line, text)
        if found is not None:
            return found
        if len(fields) == len(header):
            return RawRecord(line, value=dict(zip(header, fields, strict=True)))
        width = len(fields)
    return problem_record(line, "csv", f"the row has {width} columns; the header has {len(header)}")


def _width(text: str) -> int:
    """About how many fields a row holds: separators outside quoted fields, plus one."""
    return QUOTED.sub("", text).count(",") + 1


def _fields(line: int, text: str) -> tuple[list[str], RawRecord | None]:
    """The fields of one row's text, or the problem of a row the csv module cannot read."""
    try:
        return next(csv.reader([text]), []), None
    except csv.Error as error:
        return [], problem_record(line, "csv", f"unreadable CSV row: {error}")


def split_csv_rows(chunks: Iterator[bytes], max_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """(last line, bytes) of each row, a newline outside quotes ending it; None for a row over max_bytes."""
    splitter = _RowSplitter(max_bytes)
    for chunk in _without_byte_order_mark(chunks):
        yield from splitter.feed(chunk)
    yield from splitter.finish()


def _without_byte_order_mark(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The chunks, a leading UTF-8 byte-order mark dropped (so that a quote after it opens a field)."""
    head = b""
    for chunk in chunks:
        if len(head) < len(BOM):
            head += chunk
            if len(head) < len(BOM):
                continue
            chunk = head.removeprefix(BOM)
        yield chunk
    if len(head) < len(BOM) and head:
        yield head.removeprefix(BOM)


class _RowSplitter:
    """Cuts rows from chunks, quoting read as the csv module reads it: a quote opens a quoted field only at the
    start of a field, and inside one a doubled quote stands for a quote."""

    def __init__(self, max_bytes: int):
        """Start before the first row, on line 1."""
        self.max_bytes, self.line, self.row_newlines = max_bytes, 1, 0
        self.buffer, self.overflow = bytearray(), False
        # The byte before the chunk (None at the start of the file), and where the last quoted field closed
        # (-1: on the previous chunk's last byte).
        self.quoted, self.before, self.closed_at = False, None, -2

    def feed(self, chunk: bytes) -> Iterator[tuple[int, bytes | None]]:
        """The rows that end in this chunk."""
        # The next quote and newline are found once and reused by the rows before them: searching the rest
        # of a 1 MiB chunk again for every short row made reading a CSV of tiny rows quadratic.
        start, quote, newline = 0, chunk.find(b'"'), chunk.find(b"\n")
        while True:
            end, quote, newline = self._row_end(chunk, start, quote, newline)
            self._keep(chunk, start, len(chunk) if end < 0 else end)
            if end < 0:
                self.row_newlines += chunk.count(b"\n", start)
                break
            self.row_newlines += chunk.count(b"\n", start, end)
            yield self._row()
            start = end + 1
        if chunk:
            self.before, self.closed_at = chunk[-1], -1 if self.closed_at == len(chunk) - 1 else -2

    def _row_end(self, chunk: bytes, position: int, quote: int, newline: int) -> tuple[int, int, int]:
        """(first newline outside quotes from position or -1, next quote, next newline); -1: none in chunk."""
        while True:
            if 0 <= quote < position:
                quote = chunk.find(b'"', position)
            if 0 <= newline < position:
                newline = chunk.find(b"\n", position)
            if not self.quoted and (quote < 0 or 0 <= newline < quote):
                return newline, quote, newline
            if quote < 0:
                return -1, quote, newline
            if self.quoted:
                self.quoted, self.closed_at = False, quote
            else:
                self.quoted = self._opens_field(chunk, quote)
            position = quote + 1

    def _opens_field(self, chunk: bytes, quote: int) -> bool:
        """Whether a quote outside quoted text starts a quoted field (or, right after one closed, continues it)."""
        before = chunk[quote - 1] if quote else self.before
        return before is None or before in FIELD_STARTS or quote - 1 == self.closed_at

    def _keep(self, chunk: bytes, start: int, end: int) -> None:
        """Add part of a row to the buffer, or drop the row for good once it is over the limit."""
        if self.overflow:
            return
        self.buffer += chunk[start:end]
        if len(self.buffer) > self.max_bytes:
            self.overflow = True
            self.buffer.clear()

    def _row(self) -> tuple[int, bytes | None]:
        """The row just ended, with its last line; the splitter moves to the next line."""
        last_line = self.line + self.row_newlines
        row = None if self.overflow else bytes(self.buffer.removesuffix(b"\r"))
        self.line, self.row_newlines, self.overflow = last_line + 1, 0, False
        self.buffer.clear()
        return last_line, row

    def finish(self) -> Iterator[tuple[int, bytes | None]]:
        """The last row, when the file does not end with a newline."""
        if self.buffer or self.overflow:
            yield self._row()
