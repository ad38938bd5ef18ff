"""The upload request, shared by the page and the API: stream the file in, create the row, start validation."""
from __future__ import annotations

import logging

from flask import current_app, request

from app.auth.quotas import check_upload
from app.datasets import service
from app.datasets.upload import FORM_OVERHEAD_BYTES, receive
from app.errors import PayloadTooLarge
from app.extensions import get_queue, get_settings, get_store
from app.logs import current_request_id
from app.models import Dataset, User
from app.storage import StorageError

log = logging.getLogger(__name__)


def accept_upload(owner: User, before_file=None) -> Dataset:
    """Store the request's file, create its dataset and validate it now if small, else in a worker.

    before_file(fields) may refuse the upload from the fields sent ahead of the file.
    """
    settings, store = get_settings(), get_store()
    limit = settings.dataset_max_bytes
    if (request.content_length or 0) > limit + FORM_OVERHEAD_BYTES:
        raise PayloadTooLarge(f"The file is larger than the dataset limit of {limit} bytes.",
                              details={"field": "file", "limit_bytes": limit})
    check_upload(owner, settings, get_queue().connection, request.content_length)  # the owner's quotas
    # Lift Flask's global body limit for this request only; the file part is bounded by FilePart.
    request.max_content_length = limit + FORM_OVERHEAD_BYTES
    fields, stored = receive(request.stream, request.content_type, limit,
                             lambda filename, part: service.store_file(store, filename, part), before_file)
    try:
        options = service.parse_options(fields, stored.filename)
        dataset = service.create_dataset(owner, stored, options)
    except BaseException:
        service.discard_objects(store, stored.key)
        raise
    return start_validation(dataset, settings)


def start_validation(dataset: Dataset, settings) -> Dataset:
    """Validate a small file during the request; hand a large one (or a storage hiccup) to a worker."""
    if dataset.size_bytes <= settings.dataset_inline_validation_bytes:
        try:
            return service.run_validation(dataset, get_store(), settings.dataset_max_record_bytes) or dataset
        except StorageError as error:
            log.warning("inline validation of dataset %s failed, queueing it: %s", dataset.id, error)
    # The job's log lines then carry the id of the request that started it.
    service.enqueue_validation(get_queue(), dataset.id, meta={"request_id": current_request_id()})
    current_app.logger.info("dataset %s queued for validation", dataset.id)
    return dataset
