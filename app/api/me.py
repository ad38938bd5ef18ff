"""The signed-in user's own settings in the API: their Kaggle account (linked, checked, never shown back)."""
from __future__ import annotations

from flask import jsonify, request

from app.api.auth import current_api_user
from app.api.blueprint import bp
from app.api.schemas import kaggle_link_dict
from app.extensions import get_job_context, get_settings
from app.jobs.backends.kaggle import accounts
from app.jobs.backends.kaggle.linking import link_checked
from app.security import expensive


@bp.get("/me/kaggle")
def get_kaggle_account():
    """Whether a Kaggle account is linked, whose, and whether the shared one is offered (never the key)."""
    return jsonify(kaggle_link_dict(accounts.link_view(current_api_user(), get_settings())))


@bp.put("/me/kaggle")
@expensive
def put_kaggle_account():
    """Link (or replace) the user's Kaggle account once Kaggle accepted the credentials; 200 with the link."""
    user = current_api_user()
    link_checked(get_job_context(), user, request.get_json(silent=True))
    return jsonify(kaggle_link_dict(accounts.link_view(user, get_settings())))


@bp.delete("/me/kaggle")
def delete_kaggle_account():
    """Unlink the user's Kaggle account; 204 (404 when none was linked)."""
    accounts.unlink(current_api_user())
    return "", 204
