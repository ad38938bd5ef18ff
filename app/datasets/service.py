"""Datasets: store an upload, validate it (now or in a worker), list, preview and delete; no Flask here."""
from __future__ import annotations

import logging
import re
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import PurePosixPath

from rq import Queue, Retry

from app.datasets import readers, record_index
from app.datasets.upload import FilePart
from app.datasets.validation import ValidationOptions, validate
from app.errors import Conflict, ServiceUnavailable, ValidationFailed
from app.jobs import states
from app.models import Dataset, Job, User, utcnow
from app.pagination import Page, PageRequest, paginate
from app.storage import ObjectStore, StorageError
from app.webhooks import outbox

log = logging.getLogger(__name__)

VALIDATE_TASK = "workers.tasks.validate_dataset"
VALIDATION_RETRIES = Retry(max=3, interval=[10, 60, 300])
# RQ's three retries make four attempts per enqueue; the reconciler's re-enqueue gets one more, and then the
# dataset ends invalid instead of being retried forever.
MAX_VALIDATION_ATTEMPTS = 5
MAX_NAME_LENGTH = 200
DEFAULT_MAX_SEQ_LENGTH = 2048


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


def run_validation(dataset: Dataset, store: ObjectStore, max_record_bytes: int) -> Dataset | None:
    """Validate the stored file, store its canonical JSONL and index, record the outcome; the row now or None."""
    # At most MAX_VALIDATION_ATTEMPTS attempts; a dataset no longer processing (done, deleting) is left alone.
    attempt = _claim_attempt(dataset.id)
    if attempt is None:
        return _give_up_if_exhausted(dataset.id)
    try:
        report, written = _validate_into_storage(dataset, store, max_record_bytes)
    except StorageError as error:
        _note_failed_attempt(dataset.id, attempt, error)
        raise
    if not _record_outcome(dataset, report, written):
        # Deleted (or finished by another attempt) meanwhile: what this attempt wrote must not outlive it.
        _discard_unreferenced(store, dataset.id, written)
    return Dataset.get_or_none(Dataset.id == dataset.id)


def _claim_attempt(dataset_id: int) -> int | None:
    """Count one more attempt of a dataset still processing; its number, or None (done, deleted, out of them)."""
    # A conditional update, like the outcome's: this is what serialises validation with deletion.
    claimed = Dataset.update(validation_attempts=Dataset.validation_attempts + 1, updated_at=utcnow()).where(
        (Dataset.id == dataset_id) & (Dataset.status == "processing")
        & (Dataset.validation_attempts < MAX_VALIDATION_ATTEMPTS)).execute()
    return Dataset.select(Dataset.validation_attempts).where(Dataset.id == dataset_id).scalar() if claimed else None


def _give_up_if_exhausted(dataset_id: int) -> Dataset | None:
    """End a dataset whose attempts are spent as invalid, naming the last failure; the row as it is."""
    dataset = Dataset.get_or_none(Dataset.id == dataset_id)
    if dataset is None or dataset.status != "processing":
        return dataset
    last = (dataset.validation_errors or {}).get("last_attempt_error") or "the worker stopped before it ended"
    message = f"Validation did not finish after {dataset.validation_attempts} attempts; the last failure: {last}"
    return _finish_unvalidated(dataset, "attempts", message)


def _note_failed_attempt(dataset_id: int, attempt: int, error: StorageError) -> None:
    """Remember why an attempt failed, for the message of the last one."""
    log.warning("validation attempt %d of dataset %s failed: %s", attempt, dataset_id, error)
    Dataset.update(validation_errors={"last_attempt_error": str(error)}).where(
        (Dataset.id == dataset_id) & (Dataset.status == "processing")).execute()


def _validate_into_storage(dataset: Dataset, store: ObjectStore, max_record_bytes: int):
    """One validation pass; the canonical file and its index stored when usable. (report, keys written)"""
    options = _validation_options(dataset, max_record_bytes)
    normalized_key = f"{dataset.object_key.rsplit('/', 1)[0]}/normalized.jsonl"
    index_key = record_index.index_key_for(normalized_key)
    with tempfile.TemporaryFile(prefix="studio-normalized-") as canonical, \
            tempfile.TemporaryFile(prefix="studio-index-") as index:
        writer = record_index.IndexWriter(canonical, index)
        with store.iter_chunks(dataset.object_key) as chunks:
            report = validate(chunks, options, writer.add)
        if not report.ready:
            return report, {}
        writer.close()
        written = {"normalized_key": normalized_key, "index_key": index_key}
        for key, source, content_type in ((normalized_key, canonical, "application/x-ndjson"),
                                          (index_key, index, "application/octet-stream")):
            source.seek(0)
            store.put(key, source, content_type=content_type)
        return report, written


def _validation_options(dataset: Dataset, max_record_bytes: int) -> ValidationOptions:
    """How to read the dataset: its file format and the options chosen at upload."""
    chosen = (dataset.stats or {}).get("options", {})
    return ValidationOptions(file_format=dataset.file_format, max_record_bytes=max_record_bytes,
                             skip_invalid=chosen.get("skip_invalid", False),
                             max_seq_length=chosen.get("max_seq_length", DEFAULT_MAX_SEQ_LENGTH))


def _record_outcome(dataset: Dataset, report, written: dict) -> bool:
    """Save what validation found, only while the row is still processing; whether it was saved."""
    values = dict(status="ready" if report.ready else "invalid", format=report.record_format,
                  example_count=report.valid, validation_errors=report.as_dict(), updated_at=utcnow(),
                  stats={**report.stats, "options": (dataset.stats or {}).get("options", {})},
                  normalized_key=written.get("normalized_key"), index_key=written.get("index_key"))
    saved = Dataset.update(**values).where((Dataset.id == dataset.id) & (Dataset.status == "processing")).execute()
    if saved:
        for name, value in values.items():
            setattr(dataset, name, value)
        outbox.dataset_finished(dataset)
    return bool(saved)


def _discard_unreferenced(store: ObjectStore, dataset_id: int, written: dict) -> None:
    """Delete the objects an attempt wrote unless the dataset (still there, not being deleted) points at them."""
    row = Dataset.get_or_none(Dataset.id == dataset_id)
    kept = {row.normalized_key, row.index_key} if row is not None and row.status != "deleting" else set()
    discard_objects(store, *(key for key in written.values() if key not in kept))


def fail_validation(dataset: Dataset, message: str) -> Dataset | None:
    """Mark a dataset invalid when validation itself could not run to its end."""
    return _finish_unvalidated(dataset, "internal", message)


def _finish_unvalidated(dataset: Dataset, kind: str, message: str) -> Dataset | None:
    """End a still-processing dataset as invalid with one file-level problem; the row as it is now."""
    report = {"errors": [{"line": None, "kind": kind, "message": message}], "error_counts": {kind: 1},
              "invalid_records": 0, "dropped": 0, "truncated": False, "fatal": True}
    ended = Dataset.update(status="invalid", validation_errors=report, updated_at=utcnow()).where(
        (Dataset.id == dataset.id) & (Dataset.status == "processing")).execute()
    row = Dataset.get_or_none(Dataset.id == dataset.id)
    if ended and row is not None:
        outbox.dataset_finished(row)
    return row


def list_datasets(owner: User, search: str, request: PageRequest, count_limit: int) -> Page:
    """The owner's datasets, newest first (by keyset on the id), whose name contains search (case-insensitive);
    none being deleted; counted up to count_limit."""
    query = Dataset.select().where((Dataset.owner == owner.id) & (Dataset.status != "deleting"))
    if search:
        query = query.where(Dataset.name.contains(search))
    return paginate(query, Dataset.id, request, count_limit)


def delete_dataset(dataset: Dataset, store: ObjectStore) -> None:
    """Delete the row and its stored files; Conflict while an unfinished job uses it, 503 if storage fails."""
    # Marked deleting first, which no validation saves over (they save only while processing); the files go
    # by what the row points to then, the row last, so a storage failure leaves a row to retry or sweep.
    users = Job.select(Job.id).where(
        ((Job.dataset == dataset.id) | (Job.validation_dataset == dataset.id)) & Job.status.in_(states.ACTIVE))
    job_ids = [job.id for job in users]
    if job_ids:
        raise Conflict("The dataset is used by a job that has not finished; cancel it or wait.",
                       details={"jobs": job_ids})
    Dataset.update(status="deleting", updated_at=utcnow()).where(Dataset.id == dataset.id).execute()
    finish_deletion(dataset.id, store)


def finish_deletion(dataset_id: int, store: ObjectStore) -> None:
    """Delete the files of a dataset marked deleting, then its row; ServiceUnavailable when storage fails."""
    row = Dataset.get_or_none(Dataset.id == dataset_id)
    if row is None:
        return
    try:
        for key in filter(None, (row.object_key, row.normalized_key, row.index_key)):
            store.delete(key)
    except StorageError as error:
        log.error("deleting the files of dataset %s failed: %s", dataset_id, error)
        raise ServiceUnavailable("Object storage failed while deleting the dataset's files; it stays marked for "
                                 "deletion: try again (the daily sweep also finishes it).") from error
    Dataset.delete().where(Dataset.id == dataset_id).execute()
