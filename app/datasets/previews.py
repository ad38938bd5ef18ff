"""Reading a ready dataset's canonical records back: a page of excerpts for the preview, or one record whole."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from app.datasets import record_index
from app.datasets.excerpts import excerpt
from app.errors import Conflict, NotFound
from app.models import Dataset
from app.storage import ObjectStore

# Without an index (datasets validated before it existed) lines are scanned; this guards against a corrupt object.
LEGACY_MAX_LINE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class PreviewPage:
    """Excerpts of up to a page of records, and the positions (from 0) of those cut short."""

    records: list[dict] = field(default_factory=list)
    truncated: list[int] = field(default_factory=list)


def preview(dataset: Dataset, store: ObjectStore, offset: int, limit: int) -> PreviewPage:
    """Excerpts of up to limit canonical records from offset; none while the dataset is not ready."""
    if dataset.status != "ready" or not dataset.normalized_key:
        return PreviewPage()
    count = min(limit, (dataset.example_count or 0) - offset)
    if count <= 0:
        return PreviewPage()
    page = PreviewPage()
    for position, line in enumerate(_lines(dataset, store, offset, count), start=offset):
        shown, cut = excerpt(json.loads(line))
        page.records.append(shown)
        if cut:
            page.truncated.append(position)
    return page


def whole_record(dataset: Dataset, store: ObjectStore, position: int) -> dict:
    """The canonical record at position (from 0), whole; Conflict before validation, NotFound past the end."""
    if dataset.status != "ready" or not dataset.normalized_key:
        raise Conflict("The dataset has no records to show: it is not validated, or not valid.",
                       details={"status": dataset.status})
    if not 0 <= position < (dataset.example_count or 0):
        raise NotFound(f"record {position} not found: the dataset has {dataset.example_count or 0} records")
    return json.loads(next(_lines(dataset, store, position, 1)))


def _lines(dataset: Dataset, store: ObjectStore, first: int, count: int):
    """The canonical lines of records first … first + count - 1: ranged reads by the index when there is one."""
    if dataset.index_key:
        spans = record_index.spans(store, dataset.index_key, first, count)
        return record_index.read_lines(store, dataset.normalized_key, spans)
    return record_index.scan_lines(store, dataset.normalized_key, first, count, LEGACY_MAX_LINE_BYTES)
