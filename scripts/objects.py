"""The object half of backup.sh and restore.sh: the Studio's bucket to a tar stream and back, with checksums.

    python -m scripts.objects export > objects.tar     # objects/<key> entries, then objects.sha256
    python -m scripts.objects export --keys-from-stdin < keys > late.tar   # just these; fails if one is gone
    python -m scripts.objects import [--force] < objects.tar
    python -m scripts.objects count                    # objects in the bucket
    python -m scripts.objects tables                   # the tables whose rows point to objects
    python -m scripts.objects referenced < data.sql    # the keys they point to (pg_restore --data-only output)

The bucket and its credentials come from the app's own settings (MINIO_ENDPOINT, MINIO_USER,
MINIO_PASSWORD, MINIO_BUCKET, MINIO_SECURE, MINIO_REGION), so it runs wherever the app runs: inside the
worker container (`docker compose run --rm -T worker python -m scripts.objects ...`) or on a host with
the virtualenv. A stream, rather than a folder, lets it pass through `docker compose run` unchanged.
The last entry, objects.sha256, is in `sha256sum -c` format; each object's content type rides in a
PAX header. Import refuses a bucket that already holds objects unless forced, and fails when any
object's checksum differs from the one recorded at export.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import logging
import re
import sys
import tarfile
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import urllib3
from minio import Minio
from minio.error import S3Error

from app.models import OBJECT_KEY_COLUMNS
from app.settings import Settings
from app.storage import PART_SIZE, validate_key

MANIFEST = "objects.sha256"
PREFIX = "objects/"
CONTENT_TYPE_HEADER = "STUDIO.content_type"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
# The tables and columns that hold object keys: a restore must find in the bucket every object they name.
REFERENCES = {model._meta.table_name: columns for model, columns in OBJECT_KEY_COLUMNS}
COPY_HEADER = re.compile(r'^COPY (?:"?\w+"?\.)?"?(\w+)"? \((.*)\) FROM stdin;$')

log = logging.getLogger("scripts.objects")


class RestoreError(Exception):
    """The stream or the bucket does not allow a faithful restore."""


class HashingReader(io.RawIOBase):
    """A readable stream that passes another one through, computing its SHA-256 on the way."""

    def __init__(self, source: BinaryIO):
        """Wrap source."""
        super().__init__()
        self._source = source
        self._digest = hashlib.sha256()

    def readable(self) -> bool:
        """Always: this is a reader."""
        return True

    def read(self, size: int = -1) -> bytes:
        """Up to size bytes of the source, hashed."""
        chunk = self._source.read(size)
        self._digest.update(chunk)
        return chunk

    def hexdigest(self) -> str:
        """The SHA-256 of everything read so far."""
        return self._digest.hexdigest()


def make_client(settings: Settings) -> Minio:
    """A minio client for the Studio's S3 server; refuse the local-folder store, which is a plain folder."""
    if not settings.uses_s3:
        raise RestoreError("MINIO_ENDPOINT is empty: the objects live in a local folder "
                           f"({settings.resolved_storage_dir}); copy that folder instead")
    return Minio(settings.minio_endpoint, settings.minio_user, settings.minio_password,
                 secure=settings.minio_secure, region=settings.minio_region or None)


def bucket_keys(client: Minio, bucket: str) -> Iterator[str]:
    """Every key in the bucket (none when the bucket does not exist yet)."""
    if not client.bucket_exists(bucket):
        return
    for found in client.list_objects(bucket, recursive=True):
        yield found.object_name


def export_objects(client: Minio, bucket: str, out: BinaryIO, keys: Iterable[str] | None = None) -> int:
    """Write the objects, then the checksum manifest, as a tar stream to out; the object count.

    Every object of the bucket (one deleted meanwhile is skipped), or exactly the given keys: those are
    objects rows point to, so one that is gone fails the export, naming it.
    """
    lines, gone = [], []
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for key in bucket_keys(client, bucket) if keys is None else keys:
            digest = _add_object(tar, client, bucket, validate_key(key))
            if digest:
                lines.append(f"{digest}  {key}\n")
            else:
                gone.append(key)
        manifest = "".join(lines).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
    if keys is not None and gone:
        raise RestoreError("rows of the database point to objects that are gone (deleted while the backup ran, "
                           "or lost before it): " + ", ".join(gone))
    return len(lines)


def referenced_keys(lines: Iterable[str]) -> Iterator[str]:
    """The object keys in the REFERENCES columns of pg_restore's data-only SQL (its COPY blocks)."""
    columns: list[int] | None = None
    for line in lines:
        line = line.rstrip("\n")
        if columns is None:
            header = COPY_HEADER.match(line)
            if header and header.group(1) in REFERENCES:
                names = [name.strip().strip('"') for name in header.group(2).split(",")]
                columns = [names.index(column) for column in REFERENCES[header.group(1)]]
        elif line == "\\.":
            columns = None
        else:
            fields = line.split("\t")
            # Keys never hold a tab or a backslash (validate_key), so COPY's text needs no unescaping.
            yield from (validate_key(fields[index]) for index in columns if fields[index] != "\\N")


def _add_object(tar: tarfile.TarFile, client: Minio, bucket: str, key: str) -> str | None:
    """Stream one object into the tar; its SHA-256, or None when it vanished since the listing."""
    try:
        found = client.stat_object(bucket, key)
        response = client.get_object(bucket, key)
    except S3Error as error:
        if error.code in ("NoSuchKey", "NoSuchObject"):
            log.warning("skipped %s: deleted while the backup ran", key)
            return None
        raise
    try:
        info = tarfile.TarInfo(PREFIX + key)
        info.size = found.size or 0
        info.mtime = found.last_modified.timestamp() if found.last_modified else 0
        info.pax_headers = {CONTENT_TYPE_HEADER: found.content_type or DEFAULT_CONTENT_TYPE}
        reader = HashingReader(response)
        tar.addfile(info, reader)
        return reader.hexdigest()
    finally:
        response.close()
        response.release_conn()


def import_objects(client: Minio, bucket: str, source: BinaryIO, force: bool = False) -> int:
    """Upload every object of a tar stream made by export; check each against the manifest; the count."""
    if not client.bucket_exists(bucket):
        client.make_bucket(bucket)
    elif not force and next(bucket_keys(client, bucket), None) is not None:
        raise RestoreError(f"bucket {bucket!r} already holds objects; restore into an empty bucket, or --force")
    uploaded: dict[str, str] = {}
    expected: dict[str, str] | None = None
    with tarfile.open(fileobj=source, mode="r|*") as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if name == MANIFEST:
                expected = parse_manifest(tar.extractfile(member).read().decode())
            elif member.isfile() and name.startswith(PREFIX):
                key = validate_key(name.removeprefix(PREFIX))
                uploaded[key] = _upload_member(tar, member, client, bucket, key)
    _compare(expected, uploaded)
    return len(uploaded)


def _upload_member(tar: tarfile.TarFile, member: tarfile.TarInfo, client: Minio, bucket: str, key: str) -> str:
    """Upload one tar member as object key with its recorded content type; its SHA-256."""
    reader = HashingReader(tar.extractfile(member))
    content_type = member.pax_headers.get(CONTENT_TYPE_HEADER, DEFAULT_CONTENT_TYPE)
    client.put_object(bucket, key, reader, member.size, content_type=content_type, part_size=PART_SIZE)
    return reader.hexdigest()


def parse_manifest(text: str) -> dict[str, str]:
    """Key → SHA-256 from lines in sha256sum's format."""
    entries = {}
    for line in text.splitlines():
        digest, _, key = line.partition("  ")
        if key:
            entries[key] = digest
    return entries


def _compare(expected: dict[str, str] | None, uploaded: dict[str, str]) -> None:
    """Fail unless exactly the manifest's objects arrived, each with its recorded checksum."""
    if expected is None:
        raise RestoreError(f"the stream has no {MANIFEST}: it is not a complete export")
    problems = [f"missing from the stream: {key}" for key in sorted(expected.keys() - uploaded.keys())]
    problems += [f"not in the manifest: {key}" for key in sorted(uploaded.keys() - expected.keys())]
    problems += [f"checksum differs: {key}" for key in sorted(expected.keys() & uploaded.keys())
                 if expected[key] != uploaded[key]]
    if problems:
        raise RestoreError("the restored objects do not match the backup:\n  " + "\n  ".join(problems))


def run_command(args: argparse.Namespace, settings: Settings) -> None:
    """Carry out one command; raises on failure."""
    if args.command == "tables":
        sys.stdout.writelines(f"{table}\n" for table in REFERENCES)
    elif args.command == "referenced":
        sys.stdout.writelines(f"{key}\n" for key in sorted(set(referenced_keys(sys.stdin))))
    elif args.command == "export":
        keys = [line.strip() for line in sys.stdin if line.strip()] if args.keys_from_stdin else None
        count = export_objects(make_client(settings), settings.minio_bucket, sys.stdout.buffer, keys)
        log.info("exported %d object(s) from bucket %s", count, settings.minio_bucket)
    elif args.command == "import":
        count = import_objects(make_client(settings), settings.minio_bucket, sys.stdin.buffer, force=args.force)
        log.info("restored %d object(s) into bucket %s, checksums verified", count, settings.minio_bucket)
    else:
        print(sum(1 for _ in bucket_keys(make_client(settings), settings.minio_bucket)))


def main(argv: list[str] | None = None) -> int:
    """Run one command; 0 on success, 1 with a message on stderr otherwise."""
    parser = argparse.ArgumentParser(prog="python -m scripts.objects", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["export", "import", "count", "tables", "referenced"])
    parser.add_argument("--force", action="store_true", help="import into a bucket that already holds objects")
    parser.add_argument("--keys-from-stdin", action="store_true", help="export only the keys read from stdin")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="objects: %(message)s", stream=sys.stderr)
    settings = Settings()
    try:
        run_command(args, settings)
    except (RestoreError, S3Error, tarfile.TarError, ValueError) as error:
        log.error("%s", error)
        return 1
    except urllib3.exceptions.HTTPError as error:
        # The endpoint and the reason, never the credentials.
        log.error("cannot reach %s: %s", settings.minio_endpoint, type(error).__name__)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
