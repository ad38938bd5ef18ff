"""Datasets: store an upload, validate it (now or in a worker), list, preview and delete; no Flask here."""
from __future__ import annotations

import json
import logging
import re
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import PurePosixPath

from rq import Queue, Retry

from app.datasets import readers
from app.datasets.upload import FilePart
from app.datasets.validation import ValidationOptions, to_jsonl_line, validate
from app.errors import Conflict, ServiceUnavailable, ValidationFailed
from app.jobs import states
from app.models import Dataset, Job, User, utcnow
from app.pagination import Page, paginate
from app.storage import ObjectStore, StorageError

log = logging.getLogger(__name__)

VALIDATE_TASK = "workers.tasks.validate_dataset"
VALIDATION_RETRIES = Retry(max=3, interval=[10, 60, 300])
MAX_NAME_LENGTH = 200
DEFAULT_MAX_SEQ_LENGTH = 2048
# Canonical lines are bounded by DATASET_MAX_RECORD_BYTES; this only guards against a corrupt object.
PREVIEW_MAX_LINE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class StoredFile:
    """An uploaded file as it landed in object storage."""

    key: str
    filename: str
    size: int
    sha256: str
    head: bytes


@dataclass(frozen=True)
class UploadOptions:
    """What the uploader asked for, besides the file."""

    name: str
    file_format: str | None
    skip_invalid: bool
    max_seq_length: int


def safe_filename(filename: str | None) -> str:
    """The last path segment of a client's file name, without control characters (never used as a path)."""
    base = re.split(r"[\\/]", filename or "")[-1]
    cleaned = "".join(char for char in base if char.isprintable()).strip()
    return cleaned[:255] or "dataset"


def store_file(store: ObjectStore, filename: str, part: FilePart) -> StoredFile:
    """Stream the file part into storage under a fresh key; on any failure nothing is left behind."""
    key = f"datasets/{uuid.uuid4().hex}/original"
    try:
        store.put(key, part)
    except StorageError as error:
        discard_objects(store, key)
        log.error("storing an upload failed: %s", error)
        raise ServiceUnavailable("Object storage failed while receiving the file; nothing was saved.") from error
    except BaseException:
        discard_objects(store, key)
        raise
    return StoredFile(key, safe_filename(filename), part.size, part.sha256.hexdigest(), part.head)


def discard_objects(store: ObjectStore, *keys: str | None) -> None:
    """Delete objects, logging (not raising) failures: used while already handling another error."""
    for key in filter(None, keys):
        try:
            store.delete(key)
        except StorageError as error:
            log.warning("could not delete object %s: %s", key, error)


def parse_options(fields: dict, filename: str) -> UploadOptions:
    """The upload's form fields, checked; ValidationFailed names each bad one."""
    problems = {}
    name = (fields.get("name") or "").strip() or PurePosixPath(filename).stem or "dataset"
    if len(name) > MAX_NAME_LENGTH:
        problems["name"] = f"Use at most {MAX_NAME_LENGTH} characters."
    file_format = (fields.get("format") or "").strip().lower() or None
    if file_format not in (None, *readers.FILE_FORMATS):
        problems["format"] = f"Use one of {', '.join(readers.FILE_FORMATS)}, or leave it empty to detect it."
    skip_invalid = (fields.get("skip_invalid") or "").strip().lower() in ("1", "true", "on", "yes")
    max_seq_length = _int_field(fields, "max_seq_length", DEFAULT_MAX_SEQ_LENGTH, problems)
    if problems:
        raise ValidationFailed("The upload form has invalid fields.", details=problems)
    return UploadOptions(name, file_format, skip_invalid, max_seq_length)


def _int_field(fields: dict, name: str, default: int, problems: dict) -> int:
    """An integer form field between 16 and 131072 tokens."""
    raw = (fields.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 16 <= int(raw) <= 131072:
        problems[name] = "Use a whole number of tokens between 16 and 131072."
        return default
    return int(raw)


def create_dataset(owner: User, stored: StoredFile, options: UploadOptions) -> Dataset:
    """The row of a stored upload, status processing, its file format detected unless given."""
    file_format = options.file_format or readers.detect_file_format(stored.head, stored.filename)
    return Dataset.create(
        owner=owner, name=options.name, original_filename=stored.filename, file_format=file_format,
        object_key=stored.key, size_bytes=stored.size, sha256=stored.sha256,
        stats={"options": {"skip_invalid": options.skip_invalid, "max_seq_length": options.max_seq_length}},
    )


def validation_rq_id(dataset_id: int) -> str:
    """The id of the RQ job validating a dataset: one per dataset, so a second enqueue is recognised."""
    return f"validate-dataset-{dataset_id}"


def enqueue_validation(queue: Queue, dataset_id: int, meta: dict | None = None) -> None:
    """Have a worker validate the dataset, with RQ's retries for storage hiccups."""
    queue.enqueue(VALIDATE_TASK, dataset_id, job_id=validation_rq_id(dataset_id), retry=VALIDATION_RETRIES,
                  meta=meta or {})


def run_validation(dataset: Dataset, store: ObjectStore, max_record_bytes: int) -> Dataset:
    """Validate the stored file, store its canonical JSONL, and record the outcome; a no-op when done."""
    if dataset.status != "processing":
        return dataset
    chosen = (dataset.stats or {}).get("options", {})
    options = ValidationOptions(file_format=dataset.file_format, max_record_bytes=max_record_bytes,
                                skip_invalid=chosen.get("skip_invalid", False),
                                max_seq_length=chosen.get("max_seq_length", DEFAULT_MAX_SEQ_LENGTH))
    normalized_key = f"{dataset.object_key.rsplit('/', 1)[0]}/normalized.jsonl"
    with tempfile.TemporaryFile(prefix="studio-normalized-") as canonical:
        with store.iter_chunks(dataset.object_key) as chunks:
            report = validate(chunks, options, lambda record: canonical.write(to_jsonl_line(record)))
        if report.ready:
            canonical.seek(0)
            store.put(normalized_key, canonical, content_type="application/x-ndjson")
    return _record_outcome(dataset, report, normalized_key if report.ready else None)


def _record_outcome(dataset: Dataset, report, normalized_key: str | None) -> Dataset:
    """Save what validation found on the dataset's row."""
    dataset.status = "ready" if report.ready else "invalid"
    dataset.format = report.record_format
    dataset.example_count = report.valid
    dataset.stats = {**report.stats, "options": (dataset.stats or {}).get("options", {})}
    dataset.validation_errors = report.as_dict()
    dataset.normalized_key = normalized_key
    dataset.updated_at = utcnow()
    dataset.save()
    return dataset


def fail_validation(dataset: Dataset, message: str) -> Dataset:
    """Mark a dataset invalid when validation itself could not run to its end."""
    dataset.status = "invalid"
    dataset.validation_errors = {"errors": [{"line": None, "kind": "internal", "message": message}],
                                 "error_counts": {"internal": 1}, "invalid_records": 0, "dropped": 0,
                                 "truncated": False, "fatal": True}
    dataset.updated_at = utcnow()
    dataset.save()
    return dataset


def list_datasets(owner: User, search: str, page: int, per_page: int) -> Page:
    """The owner's datasets, newest first, whose name contains search (case-insensitive)."""
    query = Dataset.select().where(Dataset.owner == owner.id)
    if search:
        query = query.where(Dataset.name.contains(search))
    return paginate(query.order_by(Dataset.created_at.desc(), Dataset.id.desc()), page, per_page)


def preview(dataset: Dataset, store: ObjectStore, offset: int, limit: int) -> list[dict]:
    """Up to limit canonical records from offset; none while the dataset is not ready."""
    if dataset.status != "ready" or not dataset.normalized_key:
        return []
    taken = []
    with store.iter_chunks(dataset.normalized_key) as chunks:
        for index, (_line, raw) in enumerate(readers.split_lines(chunks, PREVIEW_MAX_LINE_BYTES)):
            if index >= offset + limit:
                break
            if index >= offset and raw:
                taken.append(json.loads(raw))
    return taken


def delete_dataset(dataset: Dataset, store: ObjectStore) -> None:
    """Delete the row and its stored files; Conflict while an unfinished job uses it."""
    users = Job.select(Job.id).where(
        ((Job.dataset == dataset.id) | (Job.validation_dataset == dataset.id))
        & Job.status.in_(states.ACTIVE)
    )
    job_ids = [job.id for job in users]
    if job_ids:
        raise Conflict("The dataset is used by a job that has not finished; cancel it or wait.",
                       details={"jobs": job_ids})
    keys = (dataset.object_key, dataset.normalized_key)
    dataset.delete_instance()
    discard_objects(store, *keys)
