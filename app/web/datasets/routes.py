"""Dataset pages: list with search and upload, detail with report and preview, one whole record, delete."""
from __future__ import annotations

from flask import Blueprint, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from flask_wtf.csrf import CSRFError, validate_csrf
from wtforms import ValidationError

from app.datasets import previews, service
from app.datasets.intake import accept_upload
from app.errors import StudioError
from app.extensions import csrf, get_settings, get_store
from app.htmx import STOP_POLLING, is_htmx, wants_widget
from app.models import Dataset
from app.pagination import int_arg, page_request
from app.security import expensive, polling
from app.web.live import adopt_user, etag_of, is_current, not_modified, owned_rows, refuse, session_user_id, versioned

bp = Blueprint("datasets", __name__, url_prefix="/datasets")

PREVIEW_PAGE = 10


@bp.get("")
@login_required
def index():
    """The user's datasets with search, pagination and the upload form."""
    query = request.args.get("q", "").strip()
    result = service.list_datasets(current_user, query, page_request(request.args), get_settings().list_count_limit)
    if wants_widget("dataset-table"):
        return render_template("datasets/_table.html", page=result, q=query)
    return render_template("datasets/index.html", page=result, q=query)


@bp.post("")
@expensive
@csrf.exempt  # the body is streamed, so the token is checked by require_csrf before the file is read
@login_required
def upload():
    """Receive an upload; show its dataset, or the form again with what went wrong."""
    try:
        dataset = accept_upload(current_user, before_file=require_csrf)
    except StudioError as error:
        if not is_htmx():
            raise
        body = render_template("datasets/_upload_result.html", error=error)
        return body, error.status
    target = url_for("datasets.detail", dataset_id=dataset.id)
    if is_htmx():
        return render_template("datasets/_upload_result.html", dataset=dataset), 201, {"HX-Location": target}
    return redirect(target, 303)


def require_csrf(fields: dict) -> None:
    """Refuse an upload whose CSRF token (header or a field ahead of the file) is missing or wrong."""
    try:
        validate_csrf(request.headers.get("X-CSRFToken") or fields.get("csrf_token"))
    except ValidationError as error:
        raise CSRFError(str(error)) from None


@bp.get("/<int:dataset_id>")
@login_required
def detail(dataset_id: int):
    """Status, statistics, problems and the first records of one dataset."""
    dataset = Dataset.get_owned(dataset_id, current_user)
    page = previews.preview(dataset, get_store(), 0, PREVIEW_PAGE)
    return render_template("datasets/detail.html", dataset=dataset, page=page, offset=0, limit=PREVIEW_PAGE)


@bp.get("/<int:dataset_id>/report")
@polling
def report(dataset_id: int):
    """The report widget; polled while processing (304 after one query while it still is), and polling stops
    once the outcome is known."""
    dataset = owned_rows(Dataset.select(), Dataset, session_user_id()).where(Dataset.id == dataset_id).first()
    if dataset is None:
        refuse(Dataset, dataset_id)
    adopt_user(dataset.owner)
    etag = etag_of(dataset.id, dataset.status, str(dataset.updated_at), dataset.example_count)
    if is_current(etag):
        return not_modified(etag)
    status = 200 if dataset.status == "processing" else STOP_POLLING
    body = render_template("datasets/_report.html", dataset=dataset, just_finished=True)
    return versioned(make_response(body, status), etag)


@bp.get("/<int:dataset_id>/preview")
@login_required
def preview(dataset_id: int):
    """A page of records, for the preview's previous/next links."""
    dataset = Dataset.get_owned(dataset_id, current_user)
    offset = int_arg(request.args, "offset", 0, minimum=0)
    page = previews.preview(dataset, get_store(), offset, PREVIEW_PAGE)
    context = dict(dataset=dataset, page=page, offset=offset, limit=PREVIEW_PAGE)
    if is_htmx():
        return render_template("datasets/_preview.html", **context)
    return render_template("datasets/detail.html", **context)


@bp.get("/<int:dataset_id>/records/<int:position>")
@login_required
def record(dataset_id: int, position: int):
    """One example whole, for a preview that shortened it."""
    dataset = Dataset.get_owned(dataset_id, current_user)
    whole = previews.whole_record(dataset, get_store(), position)
    return render_template("datasets/record.html", dataset=dataset, record=whole, position=position)


@bp.route("/<int:dataset_id>", methods=["DELETE"])
@bp.post("/<int:dataset_id>/delete")
@login_required
def delete(dataset_id: int):
    """Delete a dataset: htmx removes its row in place, a plain form goes back to the list."""
    dataset = Dataset.get_owned(dataset_id, current_user)
    service.delete_dataset(dataset, get_store())
    if is_htmx() and request.method == "DELETE":
        return make_response("", 200)
    flash(_("Dataset “%(name)s” deleted.", name=dataset.name), "success")
    return redirect(url_for("datasets.index"), 303)
