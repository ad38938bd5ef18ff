"""/v1/files: a fine-tune file is a Studio dataset (uploaded, validated and listed as any other)."""
from __future__ import annotations

from flask import Response, jsonify, request, stream_with_context

from app.datasets import service
from app.datasets.intake import accept_upload
from app.downloads import attachment_disposition
from app.errors import ValidationFailed
from app.extensions import get_store
from app.models import Dataset
from app.openai_api import ids, objects
from app.openai_api.blueprint import bp, current_user
from app.openai_api.paging import limit_arg, list_body, take
from app.security import expensive

PURPOSE = "fine-tune"
MAX_FILES = 10_000


def _require_purpose(fields: dict) -> None:
    """Refuse, before storing a byte, an upload for anything but fine-tuning."""
    if fields.get("purpose") != PURPOSE:
        raise ValidationFailed(f"purpose must be '{PURPOSE}' (the Studio keeps fine-tuning files only), sent "
                               "before the file.", details={"field": "purpose"})


def _owned(file_id: str) -> Dataset:
    """The user's dataset behind a file id, or 404."""
    return Dataset.get_owned(ids.row_id(ids.FILE, file_id, "file_id"), current_user())


@bp.post("/files")
@expensive
def upload_file():
    """Upload a training file; it is validated at once when small (status processed or error)."""
    return jsonify(objects.file_object(accept_upload(current_user(), _require_purpose)))


@bp.get("/files")
def list_files():
    """The user's files, newest first (order=asc for oldest first), paged by `after`."""
    order = request.args.get("order", "desc")
    if order not in ("asc", "desc"):
        raise ValidationFailed("order must be 'asc' or 'desc'.", details={"field": "order"})
    limit = limit_arg(request.args, default=MAX_FILES, maximum=MAX_FILES)
    after = ids.cursor(ids.FILE, request.args.get("after"), "after")
    if request.args.get("purpose") not in (None, "", PURPOSE):
        return jsonify(list_body([], False))  # the Studio keeps fine-tuning files only
    query = Dataset.select().where((Dataset.owner == current_user().id) & (Dataset.status != "deleting"))
    if after is not None:
        query = query.where(Dataset.id > after if order == "asc" else Dataset.id < after)
    query = query.order_by(Dataset.id.asc() if order == "asc" else Dataset.id.desc()).limit(limit + 1)
    rows, has_more = take(query, limit)
    return jsonify(list_body([objects.file_object(row) for row in rows], has_more))


@bp.get("/files/<file_id>")
def get_file(file_id: str):
    """One file."""
    return jsonify(objects.file_object(_owned(file_id)))


@bp.delete("/files/<file_id>")
def delete_file(file_id: str):
    """Delete the file (refused while an unfinished job trains on it)."""
    dataset = _owned(file_id)
    service.delete_dataset(dataset, get_store())
    return jsonify(id=file_id, object="file", deleted=True)


@bp.get("/files/<file_id>/content")
def file_content(file_id: str):
    """The file's bytes as they were uploaded, streamed."""
    dataset = _owned(file_id)
    chunks = get_store().iter_chunks(dataset.object_key)
    response = Response(stream_with_context(chunks), mimetype="application/octet-stream")
    response.headers["Content-Length"] = str(dataset.size_bytes)
    response.headers["Content-Disposition"] = attachment_disposition(dataset.original_filename or dataset.name)
    response.call_on_close(chunks.close)
    return response
