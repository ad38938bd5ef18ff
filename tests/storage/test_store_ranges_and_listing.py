"""More of the ObjectStore contract, for both implementations: ranged reads, listing by prefix, and the removal of
uploads a crashed process left half-written."""
from __future__ import annotations

import io
import multiprocessing
import os
import signal
from datetime import UTC, datetime, timedelta

import pytest

from app.storage import InvalidKey, ObjectStore
from tests.storage.test_store_contract import INVALID_KEYS, MIB, GeneratedStream, download, files_under

CONTENT = bytes(range(256)) * 64  # 16 KiB whose every offset is recognisable


@pytest.mark.parametrize("offset, length", [(0, None), (1000, None), (1000, 10), (0, 1), (16383, 5), (5, 0)])
def test_iter_chunks_reads_the_range_asked_for(store, offset, length):
    store.put("ranged.bin", io.BytesIO(CONTENT))

    chunks = list(store.iter_chunks("ranged.bin", chunk_size=4096, offset=offset, length=length))

    end = None if length is None else offset + length
    assert b"".join(chunks) == CONTENT[offset:end]
    assert all(len(chunk) <= 4096 for chunk in chunks)


@pytest.mark.parametrize("offset", [len(CONTENT), len(CONTENT) + 100])
def test_iter_chunks_from_the_end_or_beyond_is_empty(store, offset):
    store.put("ranged.bin", io.BytesIO(CONTENT))

    assert download_range(store, "ranged.bin", offset) == b""


def test_ranged_read_of_a_large_object_starts_where_asked(store):
    stream = GeneratedStream(3 * MIB)
    store.put("large.bin", stream)
    whole = download(store, "large.bin")

    assert download_range(store, "large.bin", 2 * MIB + 17, 100) == whole[2 * MIB + 17: 2 * MIB + 117]


def download_range(store: ObjectStore, key: str, offset: int, length: int | None = None) -> bytes:
    """The bytes of one range of an object."""
    return b"".join(store.iter_chunks(key, offset=offset, length=length))


def test_list_yields_the_objects_under_a_prefix_with_their_size_and_time(store):
    before = datetime.now(UTC) - timedelta(minutes=5)
    for key in ("datasets/a/original", "datasets/a/normalized.jsonl", "datasets-old/x", "jobs/1/artifacts/y"):
        store.put(key, io.BytesIO(b"12345"))

    listed = {info.key: info for info in store.list("datasets/")}

    assert sorted(listed) == ["datasets/a/normalized.jsonl", "datasets/a/original"]
    assert listed["datasets/a/original"].size == 5
    assert before < listed["datasets/a/original"].last_modified < datetime.now(UTC) + timedelta(minutes=5)
    assert sorted(info.key for info in store.list("")) == [
        "datasets-old/x", "datasets/a/normalized.jsonl", "datasets/a/original", "jobs/1/artifacts/y"]
    assert sorted(info.key for info in store.list("datasets")) == [
        "datasets-old/x", "datasets/a/normalized.jsonl", "datasets/a/original"]


def test_list_of_a_store_never_used_is_empty(store):
    assert list(store.list("datasets/")) == []


@pytest.mark.parametrize("prefix", [key for key in INVALID_KEYS if key and not key.endswith("/")][:6], ids=repr)
def test_list_refuses_a_prefix_that_could_escape_the_store(store, prefix):
    with pytest.raises(InvalidKey):
        list(store.list(prefix))


def _upload_then_die(store: ObjectStore, key: str) -> None:
    """Start uploading 20 MiB and SIGKILL this process once 9 MiB were read: the first part is written."""

    class Dying(GeneratedStream):
        def read(self, n: int = -1) -> bytes:
            if self.size_read >= 9 * MIB:
                os.kill(os.getpid(), signal.SIGKILL)
            chunk = super().read(n)
            self.size_read += len(chunk)
            return chunk

    stream = Dying(20 * MIB)
    stream.size_read = 0
    store.put(key, stream)


def test_uploads_left_half_written_by_a_killed_process_are_removed_once_old(store):
    store.put("datasets/kept/original", io.BytesIO(b"whole"))
    process = multiprocessing.get_context("fork").Process(target=_upload_then_die, args=(store, "datasets/x/original"))
    process.start()
    process.join(120)
    assert process.exitcode == -signal.SIGKILL

    assert store.remove_incomplete_uploads(older_than=datetime.now(UTC) - timedelta(hours=1)) == 0
    assert store.remove_incomplete_uploads(older_than=datetime.now(UTC) + timedelta(minutes=5)) == 1

    assert store.remove_incomplete_uploads(older_than=datetime.now(UTC) + timedelta(minutes=5)) == 0
    assert [info.key for info in store.list("")] == ["datasets/kept/original"]


def test_local_half_written_upload_is_a_temp_file_that_listing_skips(local_store):
    local_store.put("a/b", io.BytesIO(b"x"))
    (local_store.root / "a" / ".upload-crashed").write_bytes(b"half")

    assert [info.key for info in local_store.list("")] == ["a/b"]
    assert local_store.remove_incomplete_uploads(older_than=datetime.now(UTC) + timedelta(seconds=5)) == 1
    assert files_under(local_store.root) == [local_store.root / "a" / "b"]
