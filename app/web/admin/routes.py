"""The admin's users page: every user, their Kaggle link (never the key), active jobs, quota use and limits."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.auth import overview, quotas
from app.errors import NotFound, StudioError
from app.extensions import get_redis, get_settings
from app.models import User
from app.pagination import numbered_page, page_args
from app.web.auth.forms import ConfirmForm

bp = Blueprint("admin", __name__, url_prefix="/admin")


def require_admin() -> None:
    """Pages answer others as if there were no such page."""
    if not current_user.is_admin:
        raise NotFound("page not found")


@bp.get("/users")
@login_required
def users():
    """Every user with what they use and their limits, a form per user to change them."""
    require_admin()
    page, per_page = page_args(request.args)
    result = numbered_page(User.select().order_by(User.id), page, per_page)
    ids = [user.id for user in result.items]
    rows = [(user, quotas.limits_view(user, get_settings()), usage, seen)
            for user, usage, seen in zip(result.items, quotas.usage(ids, get_redis()).values(),
                                         overview.overview(ids, get_redis(), get_settings().backend_names).values(),
                                         strict=True)]
    return render_template("admin/users.html", rows=rows, page=result, confirm=ConfirmForm())


@bp.post("/users/<int:user_id>/limits")
@login_required
def set_limits(user_id: int):
    """Set a user's limits from the form (an empty field: the default)."""
    require_admin()
    if not ConfirmForm().validate_on_submit():
        return redirect(url_for("admin.users"))
    changes = {name: int(value) if value.strip().isdigit() else (None if not value.strip() else value)
               for name in quotas.LIMITS if (value := request.form.get(name)) is not None}
    try:
        user = quotas.set_limits(user_id, changes)
    except StudioError as error:
        flash(_("Limits not changed: %(problems)s", problems=error.details or error.message), "error")
        return redirect(url_for("admin.users"))
    flash(_("Limits of %(email)s saved.", email=user.email), "success")
    return redirect(url_for("admin.users"))
