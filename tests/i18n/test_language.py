"""Which language a page is answered in: the user's setting, the session's choice, Accept-Language, DEFAULT_LOCALE."""
from __future__ import annotations

import pytest

from app.db import database
from app.models import User
from tests.support.accounts import csrf_token_from, login

SPANISH = {"Accept-Language": "es-ES,es;q=0.9"}
ENGLISH = {"Accept-Language": "en-US,en;q=0.9"}


def choose(client, locale: str, next_url: str = "/", headers=None):
    """Press a language button of the footer, as on the page at next_url."""
    token = csrf_token_from(client.get(next_url, headers=headers or {}).get_data(as_text=True))
    return client.post("/language", data={"locale": locale, "next": next_url, "csrf_token": token},
                       headers=headers or {})


def saved_locale(app, user) -> str | None:
    """The language stored on the user's row."""
    with app.app_context(), database.connection_context():
        return User.get_by_id(user.id).locale


@pytest.mark.parametrize(("header", "language", "words"), [
    ("es-ES,es;q=0.9,en;q=0.8", "es", "Iniciar sesión"),
    ("fr-FR, es;q=0.5", "es", "Iniciar sesión"),
    ("fr-FR", "en", "Sign in"),
    ("en-GB,es;q=0.5", "en", "Sign in"),
])
def test_browser_language_picks_the_page_language(translations, client, header, language, words):
    html = client.get("/login", headers={"Accept-Language": header}).get_data(as_text=True)
    assert f'<html lang="{language}">' in html and f"<h1>{words}</h1>" in html


def test_default_locale_answers_a_browser_that_names_no_language_we_have(translations, make_app):
    client = make_app(default_locale="es").test_client()
    assert '<html lang="es">' in client.get("/login").get_data(as_text=True)
    assert '<html lang="es">' in client.get("/login", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert '<html lang="en">' in client.get("/login", headers=ENGLISH).get_data(as_text=True)


def test_a_choice_made_before_signing_in_stays_for_the_session_and_becomes_the_users(translations, app, client,
                                                                                    user):
    response = choose(client, "es", "/login", ENGLISH)
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    html = client.get("/login", headers=ENGLISH).get_data(as_text=True)
    assert '<html lang="es">' in html and "Iniciar sesión" in html
    assert 'aria-pressed="true" disabled>Español</button>' in html
    assert login(client, user.email).status_code == 302
    assert saved_locale(app, user) == "es"
    assert '<html lang="es">' in client.get("/", headers=ENGLISH).get_data(as_text=True)


def test_the_users_setting_follows_them_to_another_browser_and_outlasts_sign_out(translations, app, logged_in,
                                                                                user):
    assert saved_locale(app, user) is None
    settings_page = logged_in.get("/settings/tokens", headers=ENGLISH).get_data(as_text=True)
    assert "follows your browser's language" in settings_page
    assert choose(logged_in, "es", "/datasets?q=x", ENGLISH).headers["Location"] == "/datasets?q=x"
    settings_page = logged_in.get("/settings/tokens", headers=ENGLISH).get_data(as_text=True)
    assert "Guardado en tu cuenta (Español)" in settings_page and 'id="settings-language-label"' in settings_page
    assert saved_locale(app, user) == "es"
    other_browser = app.test_client()
    login(other_browser, user.email)
    html = other_browser.get("/", headers=ENGLISH).get_data(as_text=True)
    assert '<html lang="es">' in html and "<h1>Panel</h1>" in html
    token = csrf_token_from(html)
    other_browser.post("/logout", data={"csrf_token": token})
    assert "Iniciar sesión" in other_browser.get("/login", headers=ENGLISH).get_data(as_text=True)
    choose(logged_in, "en", "/", SPANISH)
    assert saved_locale(app, user) == "en"
    assert "<h1>Dashboard</h1>" in logged_in.get("/", headers=SPANISH).get_data(as_text=True)


def test_an_unknown_language_or_a_foreign_next_url_is_refused(translations, app, logged_in, user):
    response = choose(logged_in, "xx", "/", SPANISH)
    assert response.status_code == 422 and "Elige uno de estos idiomas: en, es." in response.get_data(as_text=True)
    assert saved_locale(app, user) is None
    token = csrf_token_from(logged_in.get("/").get_data(as_text=True))
    response = logged_in.post("/language", data={"locale": "es", "next": "https://evil.example/", "csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"] == "/"


def test_the_switch_needs_the_csrf_token(translations, app, logged_in, user):
    assert logged_in.post("/language", data={"locale": "es"}).status_code == 400
    assert saved_locale(app, user) is None


def test_json_api_keeps_english_messages_and_codes_whatever_the_language(translations, app, logged_in, user,
                                                                        make_token):
    choose(logged_in, "es", "/")
    bearer = {"Authorization": f"Bearer {make_token(user)}", **SPANISH}
    missing = app.test_client().get("/api/v1/datasets/999999", headers=bearer)
    assert missing.status_code == 404
    assert missing.get_json()["error"] == {"code": "not_found", "message": "dataset not found", "details": None}
    refused = app.test_client().post("/api/v1/jobs", headers=bearer, json={"base_model": "tiny-random-llama"})
    assert refused.status_code == 422 and refused.get_json()["error"]["message"] == "The job has invalid fields."
    page = logged_in.get("/datasets/999999", headers=SPANISH)
    assert page.status_code == 404 and "conjunto de datos no encontrado" in page.get_data(as_text=True)
