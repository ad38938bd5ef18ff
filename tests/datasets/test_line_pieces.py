"""The lines of a file are the same however its chunks fall: runs of whole lines, long lines refused, \\r dropped."""
from __future__ import annotations

import random

import pytest

from app.datasets import readers
from app.datasets.readers import line_pieces, split_lines


def expected_lines(data: bytes, max_bytes: int) -> list[bytes | None]:
    """The lines as the reader must give them: without newline or the carriage returns before it, None when longer
    than max_bytes (carriage returns counted), no empty line after the file's last newline."""
    lines = data.split(b"\n")
    if not lines[-1]:
        lines.pop()
    return [None if len(line) > max_bytes else line.rstrip(b"\r") for line in lines]


def chunked(data: bytes, sizes: random.Random | int) -> list[bytes]:
    """data cut into chunks of a fixed size, or of random sizes from 1 to 3 runs."""
    chunks, start = [], 0
    while start < len(data):
        size = sizes if isinstance(sizes, int) else sizes.randint(1, 3 * readers.SPLIT_BYTES)
        chunks.append(data[start:start + size])
        start += size
    return chunks


def random_file(generator: random.Random) -> bytes:
    """Lines of every length from empty to past a run, some ending with \\r, with or without a last newline."""
    lengths = [0, 1, 2, 50, 999, 1000, 1001, readers.SPLIT_BYTES - 1, readers.SPLIT_BYTES + 7]
    lines = [b"x" * generator.choice(lengths) + generator.choice([b"", b"\r"]) for _ in range(60)]
    return b"\n".join(lines) + generator.choice([b"", b"\n"])


@pytest.mark.parametrize("seed", range(6))
def test_lines_match_a_plain_split_whatever_the_chunks_and_limit(seed):
    generator = random.Random(seed)
    data = random_file(generator)
    for max_bytes in (1000, readers.SPLIT_BYTES, 10 * readers.SPLIT_BYTES):
        for sizes in (1000, readers.SPLIT_BYTES, 1024 * 1024, generator):
            got = [line for _, line in split_lines(iter(chunked(data, sizes)), max_bytes)]
            assert got == expected_lines(data, max_bytes), (seed, max_bytes, sizes)


def test_runs_end_at_newlines_and_are_not_copies_inside_a_chunk():
    data = b"".join(b"line %d\n" % index for index in range(200_000))
    pieces = list(line_pieces(iter(chunked(data, 1024 * 1024)), 1000))
    assert b"".join(bytes(piece) for piece in pieces) == data
    assert all(bytes(piece).endswith(b"\n") for piece in pieces)
    assert max(map(len, pieces)) <= readers.SPLIT_BYTES + 1000
    assert sum(isinstance(piece, memoryview) for piece in pieces) > len(pieces) // 2


def test_a_line_too_long_is_never_gathered_and_counts_as_one_line():
    data = b"a\n" + b"y" * (3 * readers.SPLIT_BYTES) + b"\nb\n"
    pieces = list(line_pieces(iter(chunked(data, 4096)), 10_000))
    assert None in pieces and max(len(piece) for piece in pieces if piece is not None) < 10_000
    assert [line for _, line in split_lines(iter(chunked(data, 4096)), 10_000)] == [b"a", None, b"b"]
