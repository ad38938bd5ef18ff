"""The index of a dataset's canonical file: where each record starts, so that any page of records (or one record)
is two ranged reads, whatever its position, instead of a scan from the start.

The index object holds one 8-byte little-endian offset per record, then the file's size, so the records
first…last span offsets[first]…offsets[last + 1].
"""
from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

import numpy

from app.datasets.readers import split_lines
from app.storage import ObjectStore, StorageError

OFFSET = struct.Struct("<Q")


class IndexWriter:
    """Writes canonical lines to one file and their offsets to another, as validation emits them."""

    def __init__(self, records: BinaryIO, index: BinaryIO):
        """Write into two empty files."""
        self.records, self.index, self.size, self.count = records, index, 0, 0

    def add(self, lines: list[bytes]) -> None:
        """Append canonical lines (given without their newlines), noting where each starts."""
        if not lines:
            return
        lengths = numpy.fromiter(map(len, lines), numpy.uint64, len(lines)) + 1  # each with its newline
        ends = self.size + numpy.cumsum(lengths)
        self.index.write((ends - lengths).astype("<u8").tobytes())
        self.size = int(ends[-1])
        self.records.write(b"\n".join(lines))
        self.records.write(b"\n")  # apart: adding it to the joined lines would copy them again
        self.count += len(lines)

    def close(self) -> None:
        """End the index with the file's size (the end of the last record)."""
        self.index.write(OFFSET.pack(self.size))


def index_key_for(normalized_key: str) -> str:
    """The index object beside a canonical file: datasets/<folder>/normalized.index."""
    return normalized_key.rsplit(".", 1)[0] + ".index"


def spans(store: ObjectStore, index_key: str, first: int, count: int) -> list[tuple[int, int]]:
    """(start, end) in the canonical file of records first … first + count - 1 (fewer past the last record)."""
    raw = b"".join(store.iter_chunks(index_key, offset=first * OFFSET.size, length=(count + 1) * OFFSET.size))
    if len(raw) % OFFSET.size:
        raise StorageError(f"the record index {index_key} is cut short")
    offsets = [value for (value,) in OFFSET.iter_unpack(raw)]
    return list(zip(offsets, offsets[1:], strict=False))


def read_lines(store: ObjectStore, key: str, found: list[tuple[int, int]]) -> Iterator[bytes]:
    """The lines the spans cover, in one ranged read, one line in memory at a time."""
    if not found:
        return
    longest = max(end - start for start, end in found)
    start, end = found[0][0], found[-1][1]
    with store.iter_chunks(key, offset=start, length=end - start) as chunks:
        for _line, raw in split_lines(chunks, longest):
            if raw:
                yield raw


def scan_lines(store: ObjectStore, key: str, first: int, count: int, max_line_bytes: int) -> Iterator[bytes]:
    """Lines first … first + count - 1 read from the start: for datasets validated before there was an index."""
    with store.iter_chunks(key) as chunks:
        for index, (_line, raw) in enumerate(split_lines(chunks, max_line_bytes)):
            if index >= first + count:
                return
            if index >= first and raw:
                yield raw
