"""The language switch: saves the choice on the user, or in the session before signing in."""
from __future__ import annotations

from flask import Blueprint, redirect, request, session
from flask_babel import gettext as _
from flask_login import current_user

from app import i18n
from app.errors import ValidationFailed
from app.web.auth.routes import safe_next_url

bp = Blueprint("i18n", __name__)


@bp.post("/language")
def set_language():
    """Answer every later page in the chosen language, then go back to the page the switch was on."""
    chosen = request.form.get("locale", "")
    if chosen not in i18n.LANGUAGES:
        raise ValidationFailed(_("Choose one of %(languages)s.", languages=", ".join(i18n.LANGUAGES)),
                               details={"locale": chosen})
    session[i18n.SESSION_KEY] = chosen
    if current_user.is_authenticated:
        i18n.save_user_locale(current_user, chosen)
    return redirect(safe_next_url(request.form.get("next")), 303)
