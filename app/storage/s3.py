"""The object store on any S3 API (MinIO, SeaweedFS, AWS), through the minio SDK."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import BinaryIO

import certifi
import urllib3
from minio import Minio
from minio.error import MinioException, S3Error

from app.storage.base import (
    CHUNK_SIZE,
    ChunkIterator,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    StorageError,
    validate_key,
    validate_prefix,
)

# Each part in flight costs the web process a few copies of PART_SIZE bytes (minio reads and slices it),
# so parts are uploaded one at a time: minio's default of three parallel 16 MiB parts measured ~160 MB
# over the idle process, no faster on one link (benchmarks/bench_datasets.py).
PART_SIZE = 8 * 1024 * 1024
PARALLEL_PARTS = 1
_MISSING_OBJECT_CODES = {"NoSuchKey", "NoSuchObject"}
# A race with another process creating the same bucket is success, not failure.
_BUCKET_EXISTS_CODES = {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}
# What S3 answers for a range that starts at or past the end of the object.
_EMPTY_RANGE_CODES = {"InvalidRange"}


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

    def iter_chunks(self, key: str, chunk_size: int = CHUNK_SIZE, offset: int = 0,
                    length: int | None = None) -> ChunkIterator:
        """Stream the object's body (a ranged GET); the connection goes back to the pool when done."""
        key = validate_key(key)
        if length == 0:  # minio reads a length of 0 as "to the end"
            self.stat(key)
            return ChunkIterator(iter(()), lambda: None)
        try:
            with _s3_errors(key):
                response = self._client().get_object(self.bucket, key, offset=offset, length=length or 0)
        except StorageError as error:
            if isinstance(error.__cause__, S3Error) and error.__cause__.code in _EMPTY_RANGE_CODES:
                return ChunkIterator(iter(()), lambda: None)
            raise

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

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """The bucket's objects under prefix, as S3 lists them (its pages fetched as they are reached)."""
        validate_prefix(prefix)
        with _s3_errors(prefix):
            for found in self._client().list_objects(self.bucket, prefix=prefix or None, recursive=True):
                if not found.is_dir:
                    yield ObjectInfo(found.object_name, found.size or 0, found.etag, found.last_modified, None)

    def remove_incomplete_uploads(self, older_than: datetime) -> int:
        """Abort the multipart uploads begun before older_than (minio offers only its private calls for this)."""
        removed, marker = 0, None
        with _s3_errors():
            while True:
                page = self._client()._list_multipart_uploads(self.bucket, key_marker=marker)
                for upload in page.uploads:
                    if upload.initiated_time is not None and upload.initiated_time < older_than:
                        self._client()._abort_multipart_upload(self.bucket, upload.object_name, upload.upload_id)
                        removed += 1
                if not page.is_truncated or not page.next_key_marker:
                    return removed
                marker = page.next_key_marker

    def check(self) -> None:
        """Reach the server and make sure the bucket exists."""
        with _s3_errors():
            self._ensure_bucket(self._client())
