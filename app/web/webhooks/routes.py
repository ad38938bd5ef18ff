"""The webhooks settings page: create, enable, rotate and delete endpoints; their delivery log; redeliver."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.errors import ValidationFailed
from app.extensions import get_settings
from app.models import WebhookEndpoint
from app.pagination import page_request
from app.web.auth.forms import ConfirmForm
from app.web.webhooks.forms import EndpointForm
from app.webhooks import endpoints

bp = Blueprint("webhooks", __name__, url_prefix="/settings/webhooks")


def render_settings(form: EndpointForm, status: int = 200, **extra):
    """The page: the new-endpoint form and the user's endpoints."""
    return render_template("webhooks/settings.html", form=form, confirm=ConfirmForm(), area="auth",
                           endpoints=endpoints.list_endpoints(current_user), **extra), status


@bp.get("")
@login_required
def settings():
    """List the user's endpoints with a form to add one."""
    return render_settings(EndpointForm())


@bp.post("")
@login_required
def create():
    """Add an endpoint and show its secret once."""
    form = EndpointForm()
    if not form.validate_on_submit():
        return render_settings(form, 422)
    try:
        endpoint, secret = endpoints.create_endpoint(current_user, form.url.data, form.events.data, get_settings())
    except ValidationFailed as refused:
        form.url.errors.append(refused.message)
        return render_settings(form, 422)
    return render_settings(EndpointForm(formdata=None), new_secret=secret, new_endpoint=endpoint)


@bp.post("/<int:endpoint_id>/rotate")
@login_required
def rotate(endpoint_id: int):
    """Give an endpoint a new secret and show it once."""
    endpoint = WebhookEndpoint.get_owned(endpoint_id, current_user)
    secret = endpoints.rotate_secret(endpoint, get_settings())
    return render_settings(EndpointForm(formdata=None), new_secret=secret, new_endpoint=endpoint)


@bp.post("/<int:endpoint_id>/enable")
@login_required
def enable(endpoint_id: int):
    """Enable a disabled endpoint again, its failures forgotten."""
    endpoint = WebhookEndpoint.get_owned(endpoint_id, current_user)
    endpoints.update_endpoint(endpoint, {"enabled": True}, get_settings())
    flash(_("Endpoint %(url)s enabled.", url=endpoint.url), "success")
    return redirect(url_for("webhooks.settings"))


@bp.post("/<int:endpoint_id>/delete")
@login_required
def delete(endpoint_id: int):
    """Delete an endpoint and its delivery log."""
    endpoint = WebhookEndpoint.get_owned(endpoint_id, current_user)
    endpoints.delete_endpoint(endpoint)
    flash(_("Endpoint %(url)s deleted.", url=endpoint.url), "success")
    return redirect(url_for("webhooks.settings"))


@bp.get("/<int:endpoint_id>")
@login_required
def deliveries(endpoint_id: int):
    """One endpoint's delivery log, newest first."""
    endpoint = WebhookEndpoint.get_owned(endpoint_id, current_user)
    page = endpoints.deliveries(endpoint, page_request(request.args), get_settings().list_count_limit)
    return render_template("webhooks/deliveries.html", endpoint=endpoint, confirm=ConfirmForm(), area="auth",
                           page=page)


@bp.post("/<int:endpoint_id>/deliveries/<int:delivery_id>/redeliver")
@login_required
def redeliver(endpoint_id: int, delivery_id: int):
    """Send a delivery's message again."""
    endpoint = WebhookEndpoint.get_owned(endpoint_id, current_user)
    endpoints.redeliver(endpoint, endpoints.get_delivery(endpoint, delivery_id))
    flash(_("The event is being delivered again."), "success")
    return redirect(url_for("webhooks.deliveries", endpoint_id=endpoint.id))
