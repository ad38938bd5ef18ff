"""Read a dataset file as a stream of records: JSONL, a JSON array or CSV, with line numbers, bounded memory."""
from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator

import numpy
import orjson

from app.datasets.csv_rows import read_csv
from app.datasets.raw import Problem, RawRecord, problem_record
from app.datasets.shape import MAX_VALUES, shape_problem, value_end
from trainer.records import MAX_DEPTH

__all__ = ["FILE_FORMATS", "Problem", "RawRecord", "detect_file_format", "jsonl_record", "line_pieces",
           "object_lines", "piece_lines", "read_records", "split_lines"]

FILE_FORMATS = ("jsonl", "json", "csv")
SNIFF_BYTES = 8192
EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv"}
# Shorter lines hold too few values to need shape_problem's scan (it skips texts this short), so they are
# parsed at once; a line's byte length bounds its length in characters.
FAST_PARSE_BYTES = 2 * MAX_VALUES
SPLIT_BYTES = 256 * 1024
NEWLINE, RETURN, OPEN, CLOSE = b"\n\r{}"


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
        record = jsonl_record(line_number, raw, max_record_bytes)
        if record is not None:
            yield record


def jsonl_record(line_number: int, raw: bytes | None, max_record_bytes: int) -> RawRecord | None:
    """The record of one JSONL line (raw None: the line was too long), or None for a blank line."""
    if raw is None:
        return problem_record(line_number, "too_long", f"the line is longer than {max_record_bytes} bytes")
    # The fast path: orjson parses the line's bytes (checking UTF-8 as it goes) when the line is too short
    # to need the shape check; anything it refuses (or a BOM, or a blank line) takes the exact path below,
    # so every problem keeps its wording, and NaN or huge integers are read as the standard library does.
    if len(raw) < FAST_PARSE_BYTES and raw[:1] == b"{":
        try:
            shallow = raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH
            return RawRecord(line_number, value=orjson.loads(raw), shallow=shallow)
        except orjson.JSONDecodeError:
            pass
    try:
        text = raw.decode("utf-8-sig" if line_number == 1 else "utf-8")
    except UnicodeDecodeError as error:
        return problem_record(line_number, "encoding", f"not valid UTF-8 (byte {error.start + 1} of the line)")
    if not text.strip():
        return None
    found = shape_problem(text)
    return parse_json(line_number, text) if found is None else problem_record(line_number, *found)


def split_lines(chunks: Iterator[bytes], max_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) of each line; bytes is None for a line longer than max_bytes, which is skipped."""
    number = 1
    for piece in line_pieces(chunks, max_bytes):
        lines = piece_lines(piece, max_bytes)
        yield from enumerate(lines, number)
        number += len(lines)


def line_pieces(chunks: Iterator[bytes], max_bytes: int) -> Iterator[bytes | memoryview | None]:
    """The file as runs of whole lines, in order, each about SPLIT_BYTES or a single longer line: every run ends
    with a newline but perhaps the file's last; None stands for one line longer than max_bytes (never held)."""
    # Runs are cut at newlines inside a chunk without copying it; only the line that spans chunks is gathered.
    pending, pending_size, overflow = [], 0, False
    for whole in chunks:
        view, start = memoryview(whole), 0
        while start < len(whole):
            stop = min(start + SPLIT_BYTES, len(whole))
            cut = whole.rfind(b"\n", start, stop) + 1
            if not cut:  # no line ends here: this is more of the line that began before
                if not overflow:
                    pending.append(whole[start:stop])
                    pending_size += stop - start
                    overflow = pending_size > max_bytes
                    if overflow:
                        pending, pending_size = [], 0
                start = stop
                continue
            if pending_size or overflow:
                # The first line ends at the first newline; it is too long if it was before or is now.
                first_end = whole.find(b"\n", start, cut) + 1
                if overflow or pending_size + first_end - 1 - start > max_bytes:
                    yield None
                    if first_end < cut:
                        yield view[first_end:cut]
                else:
                    yield b"".join((*pending, view[start:cut]))
                pending, pending_size, overflow = [], 0, False
            else:
                yield view[start:cut]
            start = cut
    if overflow:
        yield None
    elif pending_size:
        yield b"".join(pending)


def piece_lines(piece: bytes | memoryview | None, max_bytes: int) -> list[bytes | None]:
    """The lines of a run that line_pieces gave, without their newlines (nor a carriage return before one); None
    for a line longer than max_bytes."""
    if piece is None:
        return [None]
    data = bytes(piece)
    lines = data.split(b"\n")
    if not lines[-1]:
        lines.pop()
    if max(map(len, lines), default=0) > max_bytes:  # rarely: the lines are not looked at one by one otherwise
        lines = [None if len(line) > max_bytes else line for line in lines]
    if b"\r" in data:
        lines = [line.rstrip(b"\r") if line else line for line in lines]
    return lines


def object_lines(piece: bytes | memoryview) -> tuple[int, int] | None:
    """(how many lines, the longest one's length) of a run of lines, each ending with a newline, when every one
    starts with { and ends with } (a carriage return aside): one JSON object each, once a parser that reads values
    separated by whitespace finds as many values as lines; None otherwise."""
    # Inside a JSON value a } is followed by a comma, a ] or a }, never by a { (and strings hold no raw newline),
    # so each newline of such a run lies between two top-level values: every line holds at least one value.
    data = numpy.frombuffer(piece, numpy.uint8)
    if not len(data) or data[0] != OPEN or data[-1] != NEWLINE:
        return None
    ends = numpy.flatnonzero(data == NEWLINE)
    if not (data[ends[:-1] + 1] == OPEN).all():
        return None
    last = data[ends - 1]
    if not (last == CLOSE).all() and not (numpy.where(last == RETURN, data[ends - 2], last) == CLOSE).all():
        return None
    longest = max(int(ends[0]), int((ends[1:] - ends[:-1]).max(initial=0)) - 1)
    return len(ends), longest


def parse_json(line_number: int, text: str) -> RawRecord:
    """One JSON value, or the syntax error with its position."""
    try:
        return RawRecord(line_number, value=json.loads(text))
    except json.JSONDecodeError as error:
        line = line_number + error.lineno - 1
        return problem_record(line, "json", f"invalid JSON: {error.msg} (column {error.colno})")
    except RecursionError:
        return problem_record(line_number, "too_deep", "the record is nested too deeply")


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
        yield problem_record(reader.line, "encoding", "the file is not valid UTF-8 from this line on", fatal=True)


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
            yield problem_record(self.line, "json", "a JSON file must hold one array of records: expected '['",
                                 fatal=True)
            return
        self.pos += 1
        if self.peek() == "]":
            self.pos += 1
        else:
            yield from self._items_until_close()
        if self.peek():
            yield problem_record(self.line, "json", "unexpected content after the closing ']'", fatal=True)

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
                yield problem_record(self.line, "json", "expected ',' or ']' after a record", fatal=True)
                return
            self.peek()

    def _next_item(self) -> RawRecord:
        """The value at the cursor: an object or array is measured before it is parsed, a scalar decoded."""
        if self.pos >= len(self.buffer) or self.buffer[self.pos] not in "[{":
            return self._next_scalar()
        line, end = self.line, self._container_end()
        if end is None:
            return self._unfinished(line)
        text = self.buffer[self.pos:end]
        self.line += text.count("\n")
        self.pos = end
        found = shape_problem(text)
        if found is not None:  # its end is known, so the items after it can still be read
            return problem_record(line, *found)
        try:
            return RawRecord(line, value=json.loads(text))
        except json.JSONDecodeError as error:
            return self._syntax_problem(line, error, text)
        except RecursionError:
            return problem_record(line, "too_deep", "the record is nested too deeply")

    def _container_end(self) -> int | None:
        """Where the object or array at the cursor ends, reading on as needed; None past the limit or the file."""
        while True:
            end = value_end(self.buffer, self.pos)
            if end is not None:
                return end if end - self.pos <= self.max_chars else None
            if len(self.buffer) - self.pos > self.max_chars or not self.fill():
                return None

    def _unfinished(self, line: int) -> RawRecord:
        """The fatal problem of a record that is over the limit or cut off by the end of the file."""
        if self.eof:
            return problem_record(line, "json", "invalid JSON: the file ends inside this record", fatal=True)
        return problem_record(line, "too_long", f"the record is longer than {self.max_chars} characters", fatal=True)

    def _next_scalar(self) -> RawRecord:
        """Decode the scalar at the cursor, reading more text while it is incomplete."""
        line = self.line
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buffer, self.pos)
            except json.JSONDecodeError as error:
                if self._incomplete(error) and self.fill():
                    continue
                if len(self.buffer) - self.pos > self.max_chars:
                    return self._unfinished(line)
                return self._syntax_problem(line, error, self.buffer[self.pos:])
            if end - self.pos > self.max_chars:
                return self._unfinished(line)
            self.line += self.buffer.count("\n", self.pos, end)
            self.pos = end
            return RawRecord(line, value=value)

    def _incomplete(self, error: json.JSONDecodeError) -> bool:
        """Whether the error may only mean the value continues in text not read yet."""
        within_limit = len(self.buffer) - self.pos <= self.max_chars
        at_end = error.pos >= len(self.buffer) - 1 or error.msg.startswith("Unterminated string")
        return within_limit and at_end and not self.eof

    def _syntax_problem(self, line: int, error: json.JSONDecodeError, text: str) -> RawRecord:
        """The fatal problem of a value that cannot be decoded, on the line of the error."""
        error_line = line + text.count("\n", 0, error.pos)
        message = error.msg.removesuffix(" starting at")
        return problem_record(error_line, "json", f"invalid JSON: {message}", fatal=True)
