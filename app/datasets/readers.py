"""Read a dataset file as a stream of records: JSONL, a JSON array or CSV, with line numbers, bounded memory."""
from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

FILE_FORMATS = ("jsonl", "json", "csv")
SNIFF_BYTES = 8192
EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv"}


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


def detect_file_format(head: bytes, filename: str = "") -> str:
    """jsonl, json or csv: from the first non-blank character, else from the file name."""
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"["):
        return "json"
    if stripped.startswith(b"{"):
        return "jsonl"
    for extension, file_format in EXTENSIONS.items():
        if filename.lower().endswith(extension):
            return file_format
    return "csv"


def read_records(chunks: Iterable[bytes], file_format: str, max_record_bytes: int) -> Iterator[RawRecord]:
    """The records of a file in the given format, each at most max_record_bytes long."""
    readers = {"jsonl": read_jsonl, "json": read_json_array, "csv": read_csv}
    yield from readers[file_format](iter(chunks), max_record_bytes)


def read_jsonl(chunks: Iterator[bytes], max_record_bytes: int) -> Iterator[RawRecord]:
    """One JSON value per line; blank lines are skipped; a bad line does not stop the others."""
    for line_number, raw in split_lines(chunks, max_record_bytes):
        if raw is None:
            yield _problem(line_number, "too_long", f"the line is longer than {max_record_bytes} bytes")
            continue
        try:
            text = raw.decode("utf-8-sig" if line_number == 1 else "utf-8")
        except UnicodeDecodeError as error:
            yield _problem(line_number, "encoding", f"not valid UTF-8 (byte {error.start + 1} of the line)")
            continue
        if text.strip():
            yield parse_json(line_number, text)


def split_lines(chunks: Iterator[bytes], max_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) of each line; bytes is None for a line longer than max_bytes, which is skipped."""
    line_number, buffer, overflow = 1, bytearray(), False
    for chunk in chunks:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if not overflow:
                buffer += chunk[start: end if end >= 0 else len(chunk)]
                if len(buffer) > max_bytes:
                    overflow = True
                    buffer.clear()
            if end < 0:
                break
            yield line_number, None if overflow else bytes(buffer.rstrip(b"\r"))
            line_number, overflow, start = line_number + 1, False, end + 1
            buffer.clear()
    if buffer or overflow:
        yield line_number, None if overflow else bytes(buffer.rstrip(b"\r"))


def parse_json(line_number: int, text: str) -> RawRecord:
    """One JSON value, or the syntax error with its position."""
    try:
        return RawRecord(line_number, value=json.loads(text))
    except json.JSONDecodeError as error:
        return _problem(line_number + error.lineno - 1, "json", f"invalid JSON: {error.msg} (column {error.colno})")
    except RecursionError:
        return _problem(line_number, "too_deep", "the record is nested too deeply")


def _problem(line: int, kind: str, message: str, fatal: bool = False) -> RawRecord:
    """A record that could not be read."""
    return RawRecord(line, problem=Problem(line, kind, message), fatal=fatal)


def decoded(chunks: Iterator[bytes]) -> Iterator[str]:
    """The chunks as UTF-8 text (a leading byte-order mark dropped); UnicodeDecodeError on bad bytes."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    for chunk in chunks:
        text = decoder.decode(chunk)
        if text:
            yield text
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail


def read_json_array(chunks: Iterator[bytes], max_record_bytes: int) -> Iterator[RawRecord]:
    """The items of one top-level JSON array, parsed one at a time so the file is never held whole."""
    reader = _JsonArrayReader(decoded(chunks), max_record_bytes)
    try:
        yield from reader.items()
    except UnicodeDecodeError:
        yield _problem(reader.line, "encoding", "the file is not valid UTF-8 from this line on", fatal=True)


class _JsonArrayReader:
    """A cursor over the text of a JSON array that refills its buffer from the chunks as needed."""

    def __init__(self, texts: Iterator[str], max_chars: int):
        """Start before the first character."""
        self.texts, self.max_chars = texts, max_chars
        self.buffer, self.pos, self.line, self.eof = "", 0, 1, False
        self.decoder = json.JSONDecoder()

    def fill(self) -> bool:
        """Append the next text chunk, dropping what was consumed; False at the end of the file."""
        chunk = next(self.texts, None)
        if chunk is None:
            self.eof = True
            return False
        self.buffer, self.pos = self.buffer[self.pos:] + chunk, 0
        return True

    def peek(self) -> str:
        """The next non-blank character ('' at the end), counting the lines skipped."""
        while True:
            while self.pos < len(self.buffer) and self.buffer[self.pos] in " \t\r\n":
                self.line += self.buffer[self.pos] == "\n"
                self.pos += 1
            if self.pos < len(self.buffer) or not self.fill():
                return self.buffer[self.pos:self.pos + 1]

    def items(self) -> Iterator[RawRecord]:
        """Each item with the line it starts on; a syntax error ends the file."""
        if self.peek() != "[":
            yield _problem(self.line, "json", "a JSON file must hold one array of records: expected '['", fatal=True)
            return
        self.pos += 1
        if self.peek() == "]":
            self.pos += 1
        else:
            yield from self._items_until_close()
        if self.peek():
            yield _problem(self.line, "json", "unexpected content after the closing ']'", fatal=True)

    def _items_until_close(self) -> Iterator[RawRecord]:
        """Items separated by commas up to the closing bracket."""
        while True:
            record = self._next_item()
            yield record
            if record.fatal:
                return
            separator = self.peek()
            self.pos += 1
            if separator == "]":
                return
            if separator != ",":
                yield _problem(self.line, "json", "expected ',' or ']' after a record", fatal=True)
                return
            self.peek()

    def _next_item(self) -> RawRecord:
        """Decode the value at the cursor, reading more text while it is incomplete."""
        line = self.line
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buffer, self.pos)
            except json.JSONDecodeError as error:
                if self._incomplete(error) and self.fill():
                    continue
                return self._syntax_problem(line, error)
            except RecursionError:
                return _problem(line, "too_deep", "the record is nested too deeply", fatal=True)
            if end - self.pos > self.max_chars:
                return _problem(line, "too_long", f"the record is longer than {self.max_chars} characters", fatal=True)
            self.line += self.buffer.count("\n", self.pos, end)
            self.pos = end
            return RawRecord(line, value=value)

    def _incomplete(self, error: json.JSONDecodeError) -> bool:
        """Whether the error may only mean the value continues in text not read yet."""
        within_limit = len(self.buffer) - self.pos <= self.max_chars
        at_end = error.pos >= len(self.buffer) - 1 or error.msg.startswith("Unterminated string")
        return within_limit and at_end and not self.eof

    def _syntax_problem(self, line: int, error: json.JSONDecodeError) -> RawRecord:
        """The fatal problem for a value that cannot be decoded."""
        if len(self.buffer) - self.pos > self.max_chars:
            return _problem(line, "too_long", f"the record is longer than {self.max_chars} characters", fatal=True)
        error_line = line + self.buffer.count("\n", self.pos, error.pos)
        message = error.msg.removesuffix(" starting at")
        return _problem(error_line, "json", f"invalid JSON: {message}", fatal=True)


class _ChunkStream(io.RawIOBase):
    """A readable binary stream over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]):
        """Read from chunks."""
        self.chunks, self.pending = chunks, b""

    def readable(self) -> bool:
        """Always readable."""
        return True

    def readinto(self, target) -> int:
        """Copy the next bytes into target."""
        while not self.pending:
            self.pending = next(self.chunks, None)
            if self.pending is None:
                self.pending = b""
                return 0
        size = min(len(target), len(self.pending))
        target[:size], self.pending = self.pending[:size], self.pending[size:]
        return size


def read_csv(chunks: Iterator[bytes], max_record_bytes: int) -> Iterator[RawRecord]:
    """Rows as dicts keyed by the header row; line numbers are the file's physical lines."""
    text = io.TextIOWrapper(io.BufferedReader(_ChunkStream(chunks)), encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
    # The limit is process-wide in the csv module; every reader in the Studio wants the same bound.
    csv.field_size_limit(max_record_bytes)
    try:
        yield from _csv_rows(reader)
    except UnicodeDecodeError:
        yield _problem(reader.line_num + 1, "encoding", "the file is not valid UTF-8 from this line on", fatal=True)
    except csv.Error as error:
        yield _problem(reader.line_num, "csv", f"unreadable CSV: {error}", fatal=True)


def _csv_rows(reader) -> Iterator[RawRecord]:
    """Zip each row with the header; a row of the wrong width is a problem."""
    header = next(reader, None)
    if header is None:
        return
    header = [name.strip() for name in header]
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            yield _problem(reader.line_num, "csv", f"the row has {len(row)} columns; the header has {len(header)}")
            continue
        yield RawRecord(reader.line_num, value=dict(zip(header, row, strict=True)))
