"""A job's artifacts as one zip archive, produced as a stream of bytes: never whole in memory nor on disk.

The standard library's zipfile writes to a stream it cannot seek with data descriptors after each member; the sink
below hands each piece on as soon as zipfile has written it, so memory holds one storage chunk at a time.
"""
from __future__ import annotations

import zipfile
from collections.abc import Iterator

from app.models import Artifact
from app.storage import ObjectStore


class Sink:
    """A write-only, tell-only stream (so zipfile does not seek) whose written bytes are taken out as they come."""

    def __init__(self):
        """An empty sink at position 0."""
        self.pieces: list[bytes] = []
        self.position = 0

    def write(self, data) -> int:
        """Keep data until the next take()."""
        self.pieces.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        """Bytes written so far (zipfile records member offsets from it)."""
        return self.position

    def flush(self) -> None:
        """Nothing is buffered below this stream."""

    def take(self) -> bytes:
        """Everything written since the last take."""
        data, self.pieces = b"".join(self.pieces), []
        return data


def member_info(artifact: Artifact) -> zipfile.ZipInfo:
    """The zip entry of an artifact: its name, time and size (the size decides whether ZIP64 records are needed)."""
    info = zipfile.ZipInfo(artifact.name, date_time=artifact.created_at.timetuple()[:6])
    info.file_size = artifact.size_bytes
    info.compress_type = zipfile.ZIP_STORED  # safetensors barely compress; storing keeps the stream fast
    return info


def stream_zip(store: ObjectStore, members: list[Artifact]) -> Iterator[bytes]:
    """The bytes of a zip archive holding each artifact under its name, piece by piece."""
    sink = Sink()
    with zipfile.ZipFile(sink, mode="w", allowZip64=True) as archive:
        for artifact in members:
            with archive.open(member_info(artifact), mode="w") as entry, \
                    store.iter_chunks(artifact.object_key) as chunks:
                for chunk in chunks:
                    entry.write(chunk)
                    yield sink.take()
            yield sink.take()
    yield sink.take()
