"""The object store in a local folder: atomic writes (temp file, fsync, rename), for one machine."""
from __future__ import annotations

import hashlib
import os
import stat as stat_mode
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import BinaryIO

from app.storage.base import (
    CHUNK_SIZE,
    TEMP_PREFIX,
    ChunkIterator,
    InvalidKey,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    StorageError,
    validate_key,
)


@contextmanager
def _local_errors(key: str) -> Iterator[None]:
    """Turn file-system errors into StorageError."""
    try:
        yield
    except OSError as error:
        raise StorageError(f"local object store failed on {key!r}: {error.strerror or error}") from error


def _copy_with_md5(stream: BinaryIO, target: BinaryIO, length: int) -> tuple[str, int]:
    """Copy stream to target in 1 MiB chunks, all of it or exactly length bytes; return md5 and size."""
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    while length < 0 or size < length:
        chunk = stream.read(CHUNK_SIZE if length < 0 else min(CHUNK_SIZE, length - size))
        if not chunk:
            break
        digest.update(chunk)
        target.write(chunk)
        size += len(chunk)
    if 0 <= length != size:
        raise StorageError(f"the stream ended after {size} of {length} bytes")
    return digest.hexdigest(), size


def _fsync_directory(path: Path) -> None:
    """Flush a directory so a rename inside it survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalObjectStore(ObjectStore):
    """Objects as files under a root folder: the embedded default. Content types are not kept."""

    def __init__(self, root: Path):
        """Use root as the store; it is created on first write."""
        self.root = Path(root)

    def __repr__(self) -> str:
        """The root folder."""
        return f"LocalObjectStore(root={str(self.root)!r})"

    def _path(self, key: str) -> Path:
        """The file of a valid key; refused when a symlink would lead it outside the root."""
        validate_key(key)
        root = self.root.resolve()
        path = (root / key).resolve()
        if not path.is_relative_to(root) or path == root:
            raise InvalidKey(f"object key {key[:80]!r} leads outside the store")
        return path

    def put(
        self, key: str, stream: BinaryIO, length: int = -1, content_type: str = "application/octet-stream"
    ) -> ObjectInfo:
        """Write the stream to a temp file beside the target, then rename it into place."""
        path = self._path(key)
        with _local_errors(key):
            path.parent.mkdir(parents=True, exist_ok=True)
            etag, size = self._write_atomically(path, stream, length)
            modified = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
        return ObjectInfo(key, size, etag, modified, content_type)

    def _write_atomically(self, path: Path, stream: BinaryIO, length: int) -> tuple[str, int]:
        """Readers see the old file or the whole new one, never a part; a failure leaves nothing behind."""
        fd, temp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as temp:
                etag, size = _copy_with_md5(stream, temp, length)
                temp.flush()
                os.fsync(temp.fileno())
            os.replace(temp_name, path)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise
        _fsync_directory(path.parent)
        return etag, size

    def iter_chunks(self, key: str, chunk_size: int = CHUNK_SIZE) -> ChunkIterator:
        """Read the file in chunks; it is opened now, so a missing key fails here."""
        path = self._path(key)
        try:
            file = path.open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(f"no object {key!r}") from None
        except OSError as error:
            raise StorageError(f"local object store failed on {key!r}: {error.strerror}") from error
        return ChunkIterator(iter(partial(file.read, chunk_size), b""), file.close)

    def stat(self, key: str) -> ObjectInfo:
        """Size and modification time of the file; no etag or content type is kept."""
        path = self._path(key)
        try:
            found = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(f"no object {key!r}") from None
        except OSError as error:
            raise StorageError(f"local object store failed on {key!r}: {error.strerror}") from error
        # A directory is only the prefix of other keys, as on S3.
        if not stat_mode.S_ISREG(found.st_mode):
            raise ObjectNotFound(f"no object {key!r}")
        return ObjectInfo(key, found.st_size, None, datetime.fromtimestamp(found.st_mtime, tz=UTC), None)

    def delete(self, key: str) -> None:
        """Remove the file if it is there, and the folders it leaves empty (S3 has no empty prefixes)."""
        path = self._path(key)
        with _local_errors(key), suppress(FileNotFoundError, NotADirectoryError):
            path.unlink()
        root = self.root.resolve()
        for folder in path.parents:
            if folder == root:
                break
            try:
                folder.rmdir()
            except OSError:
                break  # not empty (or already gone): the folders above it are not empty either

    def check(self) -> None:
        """Make sure the root exists and a file can be written in it."""
        with _local_errors(str(self.root)):
            self.root.mkdir(parents=True, exist_ok=True)
            # Writing a probe is the only reliable test; os.access is wrong for root and on some mounts.
            with tempfile.TemporaryFile(prefix=TEMP_PREFIX, dir=self.root):
                pass
