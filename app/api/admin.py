"""Admin routes of the API: every user with their limits and usage, and setting a user's limits."""
from __future__ import annotations

from flask import jsonify, request

from app.api.auth import current_api_user
from app.api.blueprint import bp
from app.api.schemas import iso
from app.auth import overview, quotas
from app.errors import StudioError
from app.extensions import get_redis, get_settings
from app.models import User
from app.pagination import numbered_page, page_args


class Forbidden(StudioError):
    """The token is valid, but its user may not do this."""

    status = 403
    code = "forbidden"


def require_admin() -> User:
    """The request's user if an admin; Forbidden otherwise."""
    user = current_api_user()
    if not user.is_admin:
        raise Forbidden("Only an admin may do this.")
    return user


def admin_user_dict(user: User, usage: dict, seen: dict) -> dict:
    """A user as an admin sees them: the account, its limits and what it uses of them, their Kaggle link (never
    the key), active jobs and GPU quota (seen: app/auth/overview.py)."""
    return {"id": user.id, "email": user.email, "is_admin": user.is_admin, "is_active": user.is_active,
            "created_at": iso(user.created_at), "last_login_at": iso(user.last_login_at),
            "limits": quotas.limits_view(user, get_settings()), "usage": usage, **seen}


def admin_user_dicts(users: list[User]) -> list[dict]:
    """admin_user_dict of each user, in a fixed number of queries."""
    ids = [user.id for user in users]
    usage, seen = quotas.usage(ids, get_redis()), overview.overview(ids, get_redis(), get_settings().backend_names)
    return [admin_user_dict(user, usage[user.id], seen[user.id]) for user in users]


@bp.get("/admin/users")
def list_users():
    """Every user, oldest first, with their limits and usage, Kaggle link, active jobs and quota; admins only."""
    require_admin()
    page, per_page = page_args(request.args)
    result = numbered_page(User.select().order_by(User.id), page, per_page)
    return jsonify(data=admin_user_dicts(list(result.items)), meta=result.meta())


@bp.patch("/admin/users/<int:user_id>")
def update_user_limits(user_id: int):
    """Set some of a user's limits (a number, or null for the default); admins only."""
    require_admin()
    user = quotas.set_limits(user_id, request.get_json(silent=True))
    return jsonify(admin_user_dicts([user])[0])
