"""The object store in a local folder: atomic writes (temp file, fsync, rename), for one machine."""
from __future__ import annotations

import hashlib
import os
import stat as stat_mode
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
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
    validate_prefix,
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


def _read_range(file: BinaryIO, chunk_size: int, length: int | None) -> Iterator[bytes]:
    """Chunks of an open file from where it is, up to length bytes (None: to the end)."""
    remaining = length
    while remaining is None or remaining > 0:
        chunk = file.read(chunk_size if remaining is None else min(chunk_size, remaining))
        if not chunk:
            return
        if remaining is not None:
            remaining -= len(chunk)
        yield chunk


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

    def iter_chunks(self, key: str, chunk_size: int = CHUNK_SIZE, offset: int = 0,
                    length: int | None = None) -> ChunkIterator:
        """Read the file (from offset, length bytes or all) in chunks; it is opened now, so a missing key fails here."""
        path = self._path(key)
        try:
            file = path.open("rb")
            file.seek(offset)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(f"no object {key!r}") from None
        except OSError as error:
            raise StorageError(f"local object store failed on {key!r}: {error.strerror}") from error
        return ChunkIterator(_read_range(file, chunk_size, length), file.close)

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
        self._remove_empty_folders(path)

    def _remove_empty_folders(self, path: Path) -> None:
        """Remove the folders above path that are left empty, up to the root."""
        root = self.root.resolve()
        for folder in path.parents:
            if folder == root:
                break
            try:
                folder.rmdir()
            except OSError:
                break  # not empty (or already gone): the folders above it are not empty either

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """The files under the folder the prefix names, whose keys start with it; temp files are not objects."""
        validate_prefix(prefix)
        root = self.root.resolve()
        start = root / prefix.rpartition("/")[0] if "/" in prefix else root
        for folder, _folders, names in os.walk(start):
            for name in sorted(names):
                key = (Path(folder) / name).relative_to(root).as_posix()
                if key.startswith(prefix) and not name.startswith(TEMP_PREFIX):
                    with suppress(ObjectNotFound, InvalidKey):  # deleted meanwhile, or no key (a stray file)
                        yield self.stat(key)

    def remove_incomplete_uploads(self, older_than: datetime) -> int:
        """Delete the temp files of writes that never completed, last written before older_than."""
        removed, cutoff = 0, older_than.timestamp()
        with _local_errors(str(self.root)):
            # Listed first: removing a file can remove its folder, which a running rglob would trip over.
            for temp in list(self.root.rglob(f"{TEMP_PREFIX}*")):
                with suppress(FileNotFoundError):
                    if temp.is_file() and temp.stat().st_mtime < cutoff:
                        temp.unlink()
                        self._remove_empty_folders(temp.resolve())
                        removed += 1
        return removed

    def check(self) -> None:
        """Make sure the root exists and a file can be written in it."""
        with _local_errors(str(self.root)):
            self.root.mkdir(parents=True, exist_ok=True)
            # Writing a probe is the only reliable test; os.access is wrong for root and on some mounts.
            with tempfile.TemporaryFile(prefix=TEMP_PREFIX, dir=self.root):
                pass
