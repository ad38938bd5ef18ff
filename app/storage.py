"""Where uploaded files and artefacts live: the ObjectStore interface, on S3 or in a local folder."""
from __future__ import annotations

import abc
import hashlib
import os
import stat as stat_mode
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

import certifi
import urllib3
from minio import Minio
from minio.error import MinioException, S3Error

CHUNK_SIZE = 1024 * 1024
# Each part in flight costs the web process a few copies of PART_SIZE bytes (minio reads and slices it),
# so parts are uploaded one at a time: minio's default of three parallel 16 MiB parts measured ~160 MB
# over the idle process, no faster on one link (benchmarks/bench_datasets.py).
PART_SIZE = 8 * 1024 * 1024
PARALLEL_PARTS = 1
MAX_KEY_LENGTH = 512

# Temp files of in-flight local writes carry this prefix; keys may not, so they never look like objects.
TEMP_PREFIX = ".upload-"

_MISSING_OBJECT_CODES = {"NoSuchKey", "NoSuchObject"}
# A race with another process creating the same bucket is success, not failure.
_BUCKET_EXISTS_CODES = {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}


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


def attachment_disposition(filename: str) -> str:
    """A Content-Disposition value that makes a browser save the download as filename."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


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
    def iter_chunks(self, key: str, chunk_size: int = CHUNK_SIZE) -> ChunkIterator:
        """The object's bytes in chunks; raises ObjectNotFound at call time, not on first iteration."""

    @abc.abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Size and metadata of the object; ObjectNotFound when missing."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; a missing key is not an error."""

    @abc.abstractmethod
    def presigned_url(
        self, key: str, expires: timedelta = timedelta(minutes=15), filename: str | None = None
    ) -> str | None:
        """A temporary download URL, or None when the web app must stream the object itself."""

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


@contextmanager
def _s3_errors(key: str | None = None) -> Iterator[None]:
    """Turn minio and connection errors into ObjectNotFound or a short StorageError."""
    try:
        yield
    except S3Error as error:
        if error.code in _MISSING_OBJECT_CODES:
            raise ObjectNotFound(f"no object {key!r}") from None
        raise StorageError(f"object storage refused the request: {error.code}") from error
    except (MinioException, urllib3.exceptions.HTTPError, OSError) as error:
        raise StorageError(f"object storage unreachable or failing: {type(error).__name__}") from error


def _http_client() -> urllib3.PoolManager:
    """A connection pool that gives up on an unreachable server within seconds, not minutes."""
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=5, read=60),
        retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
    )


def _stream_response(response: urllib3.BaseHTTPResponse, chunk_size: int, key: str) -> Iterator[bytes]:
    """The body of a GET response, with read failures reported as StorageError."""
    with _s3_errors(key):
        yield from response.stream(chunk_size)


class S3ObjectStore(ObjectStore):
    """Objects in one bucket of an S3 server (MinIO, SeaweedFS, AWS), created on first use."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = False,
        region: str | None = None,
    ):
        """Remember the connection settings; nothing connects until first use."""
        self.endpoint = endpoint
        self.bucket = bucket
        self.secure = secure
        self.region = region
        self._access_key = access_key
        self._secret_key = secret_key
        self._minio: Minio | None = None
        self._minio_pid: int | None = None

    def __repr__(self) -> str:
        """Endpoint and bucket only, so credentials never reach a log."""
        return f"S3ObjectStore(endpoint={self.endpoint!r}, bucket={self.bucket!r})"

    def _client(self) -> Minio:
        """This process's client with the bucket ensured; a forked child must not share its parent's pool."""
        if self._minio is None or self._minio_pid != os.getpid():
            try:
                client = Minio(
                    self.endpoint, self._access_key, self._secret_key,
                    secure=self.secure, region=self.region, http_client=_http_client(),
                )
                self._ensure_bucket(client)
            except ValueError as error:
                raise StorageError(f"invalid object storage settings: {error}") from error
            self._minio, self._minio_pid = client, os.getpid()
        return self._minio

    def _ensure_bucket(self, client: Minio) -> None:
        """Create the bucket unless it exists."""
        if client.bucket_exists(self.bucket):
            return
        try:
            client.make_bucket(self.bucket, location=self.region)
        except S3Error as error:
            if error.code not in _BUCKET_EXISTS_CODES:
                raise

    def put(
        self, key: str, stream: BinaryIO, length: int = -1, content_type: str = "application/octet-stream"
    ) -> ObjectInfo:
        """Upload the stream, in PART_SIZE multipart parts when its length is unknown."""
        key = validate_key(key)
        with _s3_errors(key):
            self._client().put_object(
                self.bucket, key, stream, length, content_type=content_type, part_size=PART_SIZE,
                num_parallel_uploads=PARALLEL_PARTS,
            )
        # The server's stat gives the size of an unknown-length upload and its final etag.
        return self.stat(key)

    def iter_chunks(self, key: str, chunk_size: int = CHUNK_SIZE) -> ChunkIterator:
        """Stream the object's body; the connection goes back to the pool when done."""
        key = validate_key(key)
        with _s3_errors(key):
            response = self._client().get_object(self.bucket, key)

        def release() -> None:
            """Drop the connection if the body was not read to the end, and return it to the pool."""
            response.close()
            response.release_conn()

        return ChunkIterator(_stream_response(response, chunk_size, key), release)

    def stat(self, key: str) -> ObjectInfo:
        """The object's size, etag, modification time and content type."""
        key = validate_key(key)
        with _s3_errors(key):
            found = self._client().stat_object(self.bucket, key)
        return ObjectInfo(key, found.size or 0, found.etag, found.last_modified, found.content_type)

    def delete(self, key: str) -> None:
        """Remove the object; S3 itself treats a missing key as deleted."""
        key = validate_key(key)
        with _s3_errors(key):
            self._client().remove_object(self.bucket, key)

    def presigned_url(
        self, key: str, expires: timedelta = timedelta(minutes=15), filename: str | None = None
    ) -> str:
        """A signed GET URL, asking the server to send it as an attachment named filename."""
        key = validate_key(key)
        headers = {"response-content-disposition": attachment_disposition(filename)} if filename else None
        with _s3_errors(key):
            return self._client().presigned_get_object(
                self.bucket, key, expires=expires, response_headers=headers
            )

    def check(self) -> None:
        """Reach the server and make sure the bucket exists."""
        with _s3_errors():
            self._ensure_bucket(self._client())


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

    def presigned_url(
        self, key: str, expires: timedelta = timedelta(minutes=15), filename: str | None = None
    ) -> None:
        """Always None: local files are streamed by the web app itself."""
        validate_key(key)
        return None

    def check(self) -> None:
        """Make sure the root exists and a file can be written in it."""
        with _local_errors(str(self.root)):
            self.root.mkdir(parents=True, exist_ok=True)
            # Writing a probe is the only reliable test; os.access is wrong for root and on some mounts.
            with tempfile.TemporaryFile(prefix=TEMP_PREFIX, dir=self.root):
                pass


def make_store(settings) -> ObjectStore:
    """The S3 store when an endpoint is configured, else the local folder."""
    if settings.uses_s3:
        return S3ObjectStore(
            settings.minio_endpoint,
            settings.minio_user,
            settings.minio_password,
            settings.minio_bucket,
            secure=settings.minio_secure,
            region=settings.minio_region or None,
        )
    return LocalObjectStore(settings.resolved_storage_dir)
