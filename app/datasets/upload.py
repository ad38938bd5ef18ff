"""Receive a multipart upload as a stream: small form fields are kept, the file part flows straight on."""
from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterator
from typing import BinaryIO

from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import NEED_DATA, Data, Epilogue, Field, File, MultipartDecoder

from app.errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed

READ_SIZE = 256 * 1024
MAX_FIELD_BYTES = 64 * 1024
MAX_PARTS = 16
# Room for the form's other fields and the multipart framing around the file.
FORM_OVERHEAD_BYTES = 1024 * 1024
SNIFF_BYTES = 8192


def boundary_of(content_type: str | None) -> bytes:
    """The multipart boundary from a Content-Type header; 415 when the body is not a form upload."""
    mimetype, options = parse_options_header(content_type or "")
    if mimetype != "multipart/form-data" or not options.get("boundary"):
        raise UnsupportedMediaType("Send the dataset as multipart/form-data with a 'file' part.")
    return options["boundary"].encode("latin-1")


class MultipartStream:
    """Events of a multipart body read from a stream on demand, never more than one read ahead."""

    def __init__(self, stream: BinaryIO, boundary: bytes):
        """Decode stream's body."""
        self.stream = stream
        self.decoder = MultipartDecoder(boundary, max_form_memory_size=MAX_FIELD_BYTES + READ_SIZE, max_parts=MAX_PARTS)

    def events(self) -> Iterator:
        """Every event up to the epilogue; a body that ends early is a 400."""
        while True:
            event = self.decoder.next_event()
            if event is NEED_DATA:
                chunk = self.stream.read(READ_SIZE)
                self.decoder.receive_data(chunk or None)
                continue
            yield event
            if isinstance(event, Epilogue):
                return


class FilePart:
    """The bytes of the current file part as a readable stream, counted and hashed on the way."""

    def __init__(self, events: Iterator, max_bytes: int):
        """Read Data events from events until the part ends; refuse more than max_bytes."""
        self.events, self.max_bytes = events, max_bytes
        self.pending: deque[bytes] = deque()
        self.pending_size, self.done = 0, False
        self.size, self.sha256, self.head = 0, hashlib.sha256(), b""

    def read(self, size: int = -1) -> bytes:
        """Up to size bytes (all remaining when size < 0); b"" at the end of the part."""
        while not self.done and (size < 0 or self.pending_size < size):
            self._pull()
        if size < 0 or size >= self.pending_size:
            taken, self.pending, self.pending_size = self.pending, deque(), 0
            return b"".join(taken)
        return self._take(size)

    def _take(self, size: int) -> bytes:
        """Exactly size bytes from the pending pieces, copied once (storage asks for 16 MiB at a time)."""
        taken, total = [], 0
        while total + len(self.pending[0]) <= size:
            piece = self.pending.popleft()
            taken.append(piece)
            total += len(piece)
        if total < size:
            head, self.pending[0] = self.pending[0][: size - total], self.pending[0][size - total:]
            taken.append(head)
        self.pending_size -= size
        return b"".join(taken)

    def _pull(self) -> None:
        """Take the next Data event into the pending bytes."""
        event = next(self.events)
        if not isinstance(event, Data):
            raise ValidationFailed("The upload ended inside the file part.", details={"field": "file"})
        self.size += len(event.data)
        if self.size > self.max_bytes:
            raise PayloadTooLarge(f"The file is larger than the dataset limit of {self.max_bytes} bytes.",
                                  details={"field": "file", "limit_bytes": self.max_bytes})
        self.sha256.update(event.data)
        if len(self.head) < SNIFF_BYTES:
            self.head += event.data[: SNIFF_BYTES - len(self.head)]
        self.pending.append(event.data)
        self.pending_size += len(event.data)
        self.done = not event.more_data


def read_field(events: Iterator) -> str:
    """The text of the current (non-file) form field."""
    value = b""
    for event in events:
        value += event.data
        if len(value) > MAX_FIELD_BYTES:
            raise PayloadTooLarge("A form field is too large.")
        if not event.more_data:
            return value.decode("utf-8", errors="replace")
    return value.decode("utf-8", errors="replace")


def receive(stream: BinaryIO, content_type: str | None, max_bytes: int, store_file,
            before_file=None) -> tuple[dict, object]:
    """Parse the form; store_file(filename, FilePart) consumes the 'file' part and returns what it stored.

    before_file(fields), when given, sees the fields that precede the file and may refuse the upload
    before a byte of it is stored (the web form checks its CSRF token there).
    """
    events = MultipartStream(stream, boundary_of(content_type)).events()
    fields, stored = {}, None
    for event in events:
        if isinstance(event, File) and event.name == "file" and stored is None:
            if before_file:
                before_file(fields)
            stored = store_file(event.filename, FilePart(events, max_bytes))
        elif isinstance(event, (Field, File)):
            value = read_field(events)  # an extra file part is read (bounded) and dropped
            if isinstance(event, Field):
                fields[event.name] = value
    if stored is None:
        raise ValidationFailed("Attach the dataset as the 'file' part of the form.",
                               details={"field": "file", "message": "missing"})
    return fields, stored

