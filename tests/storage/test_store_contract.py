"""The ObjectStore contract, held by the local-folder and the S3 implementation alike."""
from __future__ import annotations

import hashlib
import io
import multiprocessing
import random
from pathlib import Path

import pytest

from app.storage import (
    PART_SIZE,
    InvalidKey,
    LocalObjectStore,
    ObjectNotFound,
    ObjectStore,
    S3ObjectStore,
    StorageError,
    make_store,
    validate_key,
)
from tests.support.ports import free_port

MIB = 1024 * 1024


class GeneratedStream:
    """A file-like object yielding `size` pseudo-random bytes without ever holding them all."""

    def __init__(self, size: int, seed: int = 7):
        """Produce size bytes from seed; sha256 covers what has been read so far."""
        self.remaining = size
        self.random = random.Random(seed)
        self.buffer = b""
        self.sha256 = hashlib.sha256()
        self.reads = 0

    def read(self, n: int = -1) -> bytes:
        """Up to n bytes (all the rest when n < 0), b"" at the end."""
        self.reads += 1
        n = self.remaining if n < 0 else min(n, self.remaining)
        while len(self.buffer) < n:
            self.buffer += self.random.randbytes(MIB)
        chunk, self.buffer = self.buffer[:n], self.buffer[n:]
        self.remaining -= n
        self.sha256.update(chunk)
        return chunk


class StreamBroke(Exception):
    """The upload's source failed."""


class FailingStream(GeneratedStream):
    """Delivers one read, then fails like a client that went away mid-upload."""

    def read(self, n: int = -1) -> bytes:
        """The first chunk, then StreamBroke."""
        if self.reads:
            raise StreamBroke("client disconnected")
        return super().read(n)


class TargetWatchingStream(GeneratedStream):
    """Records, on its second read, what a reader of the target file would see mid-upload."""

    def __init__(self, size: int, target: Path):
        """Watch target while the upload is under way."""
        super().__init__(size)
        self.target = target
        self.seen_mid_upload: bytes | None = None

    def read(self, n: int = -1) -> bytes:
        """Like GeneratedStream, noting the target's content (None if absent) on the second read."""
        if self.reads == 1:
            self.seen_mid_upload = self.target.read_bytes() if self.target.exists() else None
        return super().read(n)


def download(store: ObjectStore, key: str) -> bytes:
    """The whole object; only for small test objects."""
    return b"".join(store.iter_chunks(key))


def sha256_of_download(store: ObjectStore, key: str) -> str:
    """The object's sha256, computed chunk by chunk."""
    digest = hashlib.sha256()
    for chunk in store.iter_chunks(key):
        digest.update(chunk)
    return digest.hexdigest()


def files_under(folder: Path) -> list[Path]:
    """Every file below folder, temp files included."""
    return sorted(path for path in folder.rglob("*") if not path.is_dir())


INVALID_KEYS = [
    "",
    "/etc/passwd",
    "../x",
    "a/../../x",
    "a/./b",
    "a//b",
    "a/",
    "a\\b",
    "a\x00b",
    "a\nb",
    "k" * 600,
    ".upload-abc",
    "datasets/.upload-abc",
]


# The contract, for both implementations


def test_put_then_stat_and_download_return_the_same_bytes(store):
    content = b'{"prompt": "hi", "completion": "there"}\n' * 100

    info = store.put("datasets/12/3f9a.jsonl", io.BytesIO(content), length=len(content))

    assert info.key == "datasets/12/3f9a.jsonl"
    assert info.size == len(content)
    assert store.stat("datasets/12/3f9a.jsonl").size == len(content)
    assert download(store, "datasets/12/3f9a.jsonl") == content


def test_put_of_unknown_length_streams_more_than_one_part(store):
    stream = GeneratedStream(17 * MIB)

    info = store.put("big/model.bin", stream)

    assert info.size == 17 * MIB
    assert store.stat("big/model.bin").size == 17 * MIB
    assert sha256_of_download(store, "big/model.bin") == stream.sha256.hexdigest()


def test_put_with_known_length_stores_exactly_that_many_bytes(store):
    store.put("partial.bin", io.BytesIO(b"0123456789"), length=4)

    assert download(store, "partial.bin") == b"0123"


def test_put_of_a_stream_shorter_than_its_length_fails(store):
    with pytest.raises(StorageError):
        store.put("short.bin", io.BytesIO(b"abc"), length=10)

    assert not store.exists("short.bin")


def test_put_of_an_empty_stream_stores_an_empty_object(store):
    store.put("empty.txt", io.BytesIO(b""))

    assert store.stat("empty.txt").size == 0
    assert download(store, "empty.txt") == b""


def test_put_overwrites_an_existing_object(store):
    store.put("report.txt", io.BytesIO(b"first version, longer"))
    store.put("report.txt", io.BytesIO(b"second"))

    assert download(store, "report.txt") == b"second"
    assert store.stat("report.txt").size == len(b"second")


def test_put_works_before_the_store_was_ever_used(store):
    """The S3 bucket and the local folder do not exist yet; the first put creates them."""
    store.put("first.txt", io.BytesIO(b"hello"))

    assert store.exists("first.txt")


def test_exists_tells_stored_keys_from_missing_ones(store):
    store.put("a/b.txt", io.BytesIO(b"x"))

    assert store.exists("a/b.txt")
    assert not store.exists("a/c.txt")
    assert not store.exists("a")


def test_delete_removes_the_object(store):
    store.put("gone.txt", io.BytesIO(b"bye"))

    store.delete("gone.txt")

    assert not store.exists("gone.txt")
    with pytest.raises(ObjectNotFound):
        store.stat("gone.txt")


def test_delete_of_a_missing_key_is_not_an_error(store):
    store.delete("never/stored.txt")

    assert not store.exists("never/stored.txt")


def test_iter_chunks_of_a_missing_key_raises_at_call_time(store):
    with pytest.raises(ObjectNotFound):
        store.iter_chunks("missing.txt")


def test_stat_of_a_missing_key_raises_object_not_found(store):
    with pytest.raises(ObjectNotFound):
        store.stat("missing.txt")


def test_iter_chunks_yields_chunks_of_the_requested_size(store):
    store.put("chunks.bin", io.BytesIO(b"abcdefghij"))

    chunks = list(store.iter_chunks("chunks.bin", chunk_size=4))

    assert b"".join(chunks) == b"abcdefghij"
    assert all(len(chunk) <= 4 for chunk in chunks)
    assert len(chunks) >= 3


def test_closing_a_download_midway_leaves_the_store_usable(store):
    store.put("long.bin", GeneratedStream(3 * MIB))

    with store.iter_chunks("long.bin", chunk_size=64 * 1024) as chunks:
        next(chunks)

    assert store.stat("long.bin").size == 3 * MIB
    assert len(download(store, "long.bin")) == 3 * MIB


@pytest.mark.parametrize("operation", ["put", "stat", "delete", "exists", "iter_chunks"])
@pytest.mark.parametrize("key", INVALID_KEYS, ids=repr)
def test_invalid_keys_are_refused(store, key, operation):
    arguments = (key, io.BytesIO(b"x")) if operation == "put" else (key,)

    with pytest.raises(InvalidKey):
        getattr(store, operation)(*arguments)


def test_check_passes_on_a_usable_store(store):
    store.check()


# Key rules


@pytest.mark.parametrize(
    "key", ["datasets/12/3f9a.jsonl", "a", "runs/7/adapter.safetensors", "x/.hidden", "a..b", "a b/c"]
)
def test_validate_key_accepts_ordinary_relative_paths(key):
    assert validate_key(key) == key


# Local folder only


def test_local_put_returns_the_md5_etag(local_store):
    info = local_store.put("file.txt", io.BytesIO(b"hello"))

    assert info.etag == hashlib.md5(b"hello", usedforsecurity=False).hexdigest()


def test_local_failed_upload_leaves_no_file_behind(local_store):
    local_store.put("datasets/keep.txt", io.BytesIO(b"keep"))

    with pytest.raises(StreamBroke):
        local_store.put("datasets/broken.bin", FailingStream(5 * MIB))

    assert files_under(local_store.root) == [local_store.root / "datasets" / "keep.txt"]


def test_local_new_object_appears_only_when_complete(local_store):
    target = local_store.root / "atomic.bin"
    stream = TargetWatchingStream(3 * MIB, target)

    local_store.put("atomic.bin", stream)

    assert stream.reads > 2
    assert stream.seen_mid_upload is None
    assert target.stat().st_size == 3 * MIB


def test_local_overwrite_keeps_the_old_object_until_the_new_one_is_complete(local_store):
    local_store.put("atomic.bin", io.BytesIO(b"old"))
    stream = TargetWatchingStream(3 * MIB, local_store.root / "atomic.bin")

    local_store.put("atomic.bin", stream)

    assert stream.seen_mid_upload == b"old"
    assert local_store.stat("atomic.bin").size == 3 * MIB


def test_local_delete_leaves_no_empty_folders_behind(local_store):
    local_store.put("datasets/abc/original", io.BytesIO(b"a"))
    local_store.put("datasets/keep/original", io.BytesIO(b"b"))
    local_store.delete("datasets/abc/original")
    assert sorted(p.relative_to(local_store.root).as_posix() for p in local_store.root.rglob("*")) == [
        "datasets", "datasets/keep", "datasets/keep/original"]


def test_local_symlink_leading_outside_the_root_is_refused(local_store, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    local_store.root.mkdir()
    (local_store.root / "escape").symlink_to(outside)

    with pytest.raises(InvalidKey):
        local_store.stat("escape/secret.txt")
    with pytest.raises(InvalidKey):
        local_store.put("escape/planted.txt", io.BytesIO(b"x"))
    assert not (outside / "planted.txt").exists()


def test_local_check_creates_the_root(local_store):
    local_store.check()

    assert local_store.root.is_dir()
    assert files_under(local_store.root) == []


def test_local_check_fails_when_the_root_cannot_be_a_folder(tmp_path):
    (tmp_path / "taken").write_bytes(b"a file, not a folder")

    with pytest.raises(StorageError):
        LocalObjectStore(tmp_path / "taken").check()


# S3 only


def test_s3_upload_of_unknown_length_goes_up_in_parts(s3_store):
    info = s3_store.put("big/model.bin", GeneratedStream(2 * PART_SIZE + MIB))

    # S3 gives a multipart object the etag "<md5 of part md5s>-<part count>".
    assert info.etag is not None and info.etag.endswith("-3")


def test_s3_keeps_the_content_type(s3_store):
    s3_store.put("page.html", io.BytesIO(b"<p>hi</p>"), content_type="text/html")

    assert s3_store.stat("page.html").content_type == "text/html"


def test_s3_wrong_secret_key_fails_the_check_without_revealing_it(make_s3_store):
    store = make_s3_store(secret_key="wrong-secret-value")

    with pytest.raises(StorageError) as raised:
        store.check()

    assert "wrong-secret-value" not in str(raised.value)
    assert "wrong-secret-value" not in repr(store)


def test_s3_unreachable_endpoint_fails_the_check(make_s3_store):
    store = make_s3_store(endpoint=f"127.0.0.1:{free_port()}")

    with pytest.raises(StorageError):
        store.check()


@pytest.mark.parametrize("setting", [{"bucket": "Not_A_Bucket"}, {"endpoint": "http://127.0.0.1:9000/path"}])
def test_s3_malformed_settings_fail_the_check(make_s3_store, setting):
    with pytest.raises(StorageError):
        make_s3_store(**setting).check()


def test_s3_client_is_recreated_in_a_forked_child(s3_store):
    parent_client = s3_store._client()

    def child() -> None:
        """Upload from the child, failing if it inherited the parent's client."""
        # A fresh client proves the child does not reuse the parent's pooled connections.
        if s3_store._client() is parent_client:
            raise SystemExit(2)
        s3_store.put("from-child.txt", io.BytesIO(b"made in the child"))

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(60)

    assert process.exitcode == 0
    assert download(s3_store, "from-child.txt") == b"made in the child"


# Choosing the implementation


class FakeSettings:
    """The settings attributes make_store reads."""

    minio_endpoint = "127.0.0.1:9000"
    minio_user = "studio"
    minio_password = "not-a-real-secret"
    minio_bucket = "studio-bucket"
    minio_secure = False
    minio_region = ""

    def __init__(self, uses_s3: bool, storage_dir: Path):
        """Pick S3 or the local folder."""
        self.uses_s3 = uses_s3
        self.resolved_storage_dir = storage_dir


def test_make_store_uses_s3_when_an_endpoint_is_configured(tmp_path):
    store = make_store(FakeSettings(uses_s3=True, storage_dir=tmp_path))

    assert isinstance(store, S3ObjectStore)
    assert (store.endpoint, store.bucket, store.region) == ("127.0.0.1:9000", "studio-bucket", None)


def test_make_store_uses_the_local_folder_otherwise(tmp_path):
    store = make_store(FakeSettings(uses_s3=False, storage_dir=tmp_path / "objects"))

    assert isinstance(store, LocalObjectStore)
    assert store.root == tmp_path / "objects"
