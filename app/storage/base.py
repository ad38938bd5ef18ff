"""The ObjectStore interface every store implements: keys, errors, object info and streamed reads."""
from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

CHUNK_SIZE = 1024 * 1024
MAX_KEY_LENGTH = 512

# Temp files of in-flight local writes carry this prefix; keys may not, so they never look like objects.
TEMP_PREFIX = ".upload-"


class StorageError(Exception):
    """Any failure of the object store; the message never carries credentials."""


class ObjectNotFound(StorageError):
    """No object exists under the key."""


class InvalidKey(StorageError):
    """The key is malformed or could escape the store."""


@dataclass(frozen=True)
class ObjectInfo:
    """What the store knows about one object."""

    key: str
    size: int
    etag: str | None
    last_modified: datetime | None
    content_type: str | None


def validate_key(key: str) -> str:
    """Return key unchanged when it is a safe relative path like "datasets/12/3f9a.jsonl", else InvalidKey."""
    if not isinstance(key, str) or not key:
        raise InvalidKey("an object key must be a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(f"an object key must be at most {MAX_KEY_LENGTH} characters")
    if key.startswith("/") or "\\" in key or any(ord(char) < 32 or ord(char) == 127 for char in key):
        raise InvalidKey(f"object key {key[:80]!r} is absolute or has a backslash or control character")
    segments = key.split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        raise InvalidKey(f"object key {key[:80]!r} has an empty, '.' or '..' segment")
    # Refused on S3 too, so a key that works on one store works on the other.
    if segments[-1].startswith(TEMP_PREFIX):
        raise InvalidKey(f"object key {key[:80]!r} uses the reserved prefix {TEMP_PREFIX!r}")
    return key


def validate_prefix(prefix: str) -> str:
    """Return prefix unchanged when it is "" or the start of a valid key ("datasets/"), else InvalidKey."""
    if prefix:
        validate_key(prefix.removesuffix("/"))
    return prefix


class ChunkIterator:
    """The bytes of one object in chunks; releases its file or connection when exhausted or closed."""

    def __init__(self, chunks: Iterator[bytes], release: Callable[[], None]):
        """Wrap chunks, calling release exactly once when done."""
        self._chunks = chunks
        self._release = release
        self._closed = False

    def __iter__(self) -> ChunkIterator:
        """The iterator itself."""
        return self

    def __next__(self) -> bytes:
        """The next chunk; releases the source at the end or on an error."""
        try:
            return next(self._chunks)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the source; WSGI servers call this when a client goes away mid-download."""
        if not self._closed:
            self._closed = True
            self._release()

    def __enter__(self) -> ChunkIterator:
        """The iterator itself, closed on leaving the block."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Release the source."""
        self.close()


class ObjectStore(abc.ABC):
    """Keyed blobs, streamed in and out; keys are relative paths checked by validate_key."""

    @abc.abstractmethod
    def put(
        self, key: str, stream: BinaryIO, length: int = -1, content_type: str = "application/octet-stream"
    ) -> ObjectInfo:
        """Store the stream under key, replacing any object there; length -1 means unknown."""

    @abc.abstractmethod
    def iter_chunks(self, key: str, chunk_size: int = CHUNK_SIZE, offset: int = 0,
                    length: int | None = None) -> ChunkIterator:
        """The object's bytes from offset (length of them, or the rest) in chunks; ObjectNotFound at call time."""
        # A range from or past the end is empty, not an error.

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with prefix (a plain string prefix, as on S3), in no set order."""

    @abc.abstractmethod
    def remove_incomplete_uploads(self, older_than: datetime) -> int:
        """Discard the uploads begun before older_than that never completed (their writer died); how many."""

    @abc.abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Size and metadata of the object; ObjectNotFound when missing."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; a missing key is not an error."""

    @abc.abstractmethod
    def check(self) -> None:
        """Cheap health probe; raises StorageError when the store is unusable."""

    def exists(self, key: str) -> bool:
        """Whether an object is stored under key."""
        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True
