"""The interface's language: Flask-Babel set up, and which language a request is answered in.

The language is the user's own choice (a saved setting, or one made before signing in and kept in the
session), else the best match for the browser's Accept-Language, else the deployment's DEFAULT_LOCALE.
Only the pages are translated: the JSON APIs keep English messages and stable error codes.
"""
from __future__ import annotations

from babel import negotiate_locale
from flask import Flask, current_app, request, session
from flask_babel import Babel, get_locale
from flask_login import current_user

from app.models import User
from app.settings import PROJECT_ROOT

# The languages with a catalog in translations/, by code, as each calls itself (for the language switch).
LANGUAGES = {"en": "English", "es": "Español"}
SESSION_KEY = "locale"


def init_app(app: Flask) -> None:
    """Attach Flask-Babel with the Studio's catalogs and locale selector."""
    settings = app.extensions["settings"]
    app.config.update(BABEL_DEFAULT_LOCALE=settings.default_locale,
                      BABEL_TRANSLATION_DIRECTORIES=str(PROJECT_ROOT / "translations"))
    Babel(app, locale_selector=select_locale)
    app.jinja_env.globals.update(get_locale=get_locale, languages=LANGUAGES)


def save_user_locale(user, locale: str) -> None:
    """Remember the user's language on their account (used on every device they sign in from)."""
    User.update(locale=locale).where(User.id == user.id).execute()
    user.locale = locale


def remembered_choice() -> str | None:
    """The language the person chose, to carry across a session cleared at sign-in or sign-out."""
    return getattr(current_user, "locale", None) or session.get(SESSION_KEY)


def keep_choice(chosen: str | None) -> None:
    """Put a choice taken by remembered_choice() back into a fresh session."""
    if chosen in LANGUAGES:
        session[SESSION_KEY] = chosen


def select_locale() -> str:
    """The user's saved language, else the session's, else the browser's best match, else the default."""
    chosen = getattr(current_user, "locale", None) or session.get(SESSION_KEY)
    if chosen in LANGUAGES:
        return chosen
    # In the browser's order of preference: "en-GB, es;q=0.5" is English (werkzeug's best_match prefers any exact
    # match, here es, to a closer language's region).
    preferred = [value.lower() for value in request.accept_languages.values()]
    return negotiate_locale(preferred, list(LANGUAGES), sep="-") or current_app.extensions["settings"].default_locale
