"""Dataset routes of the API: upload, list, read, preview, one whole record, delete."""
from __future__ import annotations

from flask import jsonify, request, url_for

from app.api import schemas
from app.api.auth import current_api_user
from app.api.blueprint import bp
from app.datasets import previews, service
from app.datasets.intake import accept_upload
from app.extensions import get_settings, get_store
from app.models import Dataset
from app.pagination import int_arg, page_request
from app.security import expensive

MAX_PREVIEW = 100


@bp.post("/datasets")
@expensive
def upload_dataset():
    """Stream a multipart upload into storage and validate it; 201, or 202 while a worker validates."""
    dataset = accept_upload(current_api_user())
    status = 202 if dataset.status == "processing" else 201
    response = jsonify(schemas.dataset_dict(dataset))
    response.headers["Location"] = url_for("api.get_dataset", dataset_id=dataset.id)
    return response, status


@bp.get("/datasets")
def list_datasets():
    """The user's datasets, newest first; `q` filters by name."""
    result = service.list_datasets(current_api_user(), request.args.get("q", "").strip(),
                                   page_request(request.args, numbered=True), get_settings().list_count_limit)
    return jsonify(data=[schemas.dataset_dict(d) for d in result.items], meta=result.meta())


@bp.get("/datasets/<int:dataset_id>")
def get_dataset(dataset_id: int):
    """One of the user's datasets with its statistics and validation report."""
    return jsonify(schemas.dataset_dict(Dataset.get_owned(dataset_id, current_api_user())))


@bp.get("/datasets/<int:dataset_id>/preview")
def preview_dataset(dataset_id: int):
    """A page of the dataset's records in canonical form, long ones cut short with a link to the whole record."""
    dataset = Dataset.get_owned(dataset_id, current_api_user())
    offset = int_arg(request.args, "offset", 0, minimum=0)
    limit = int_arg(request.args, "limit", 20, maximum=MAX_PREVIEW)
    page = previews.preview(dataset, get_store(), offset, limit)
    truncated = [{"index": position, "href": url_for("api.get_dataset_record", dataset_id=dataset.id,
                                                     position=position)} for position in page.truncated]
    meta = {"offset": offset, "limit": limit, "total": dataset.example_count or 0, "format": dataset.format,
            "truncated": truncated}
    return jsonify(data=page.records, meta=meta)


@bp.get("/datasets/<int:dataset_id>/records/<int:position>")
def get_dataset_record(dataset_id: int, position: int):
    """One canonical record, whole (position counts from 0, as the preview's offset does)."""
    dataset = Dataset.get_owned(dataset_id, current_api_user())
    return jsonify(index=position, record=previews.whole_record(dataset, get_store(), position))


@bp.delete("/datasets/<int:dataset_id>")
def delete_dataset(dataset_id: int):
    """Delete the dataset and its files; 409 while an unfinished job uses it."""
    service.delete_dataset(Dataset.get_owned(dataset_id, current_api_user()), get_store())
    return "", 204
