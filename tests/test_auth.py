"""Accounts: login, logout, API tokens and their revocation (their CSRF checks: tests/security/test_csrf.py)."""
from __future__ import annotations

import pytest

from app.auth import service
from app.db import database
from app.errors import Conflict, ValidationFailed
from app.models import ApiToken
from tests.support.accounts import PASSWORD, csrf_token_from, login


def test_pages_redirect_anonymous_users_to_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_login_with_right_password_opens_the_dashboard(client, user):
    response = login(client, user.email)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    page = client.get("/")
    assert page.status_code == 200
    assert "Dashboard" in page.get_data(as_text=True)


def test_login_is_case_insensitive_on_email(client, user):
    assert login(client, user.email.upper()).status_code == 302


@pytest.mark.parametrize("password", ["wrong password!", ""])
def test_login_with_wrong_password_is_refused_with_message(client, user, password):
    response = login(client, user.email, password)
    assert response.status_code == 422
    assert "Wrong email or password" in response.get_data(as_text=True) or password == ""
    assert client.get("/").status_code == 302


def test_login_of_unknown_email_says_the_same_as_a_wrong_password(client):
    response = login(client, "nobody@example.com")
    assert response.status_code == 422
    assert "Wrong email or password" in response.get_data(as_text=True)


def test_inactive_user_cannot_log_in(client, user, app):
    with app.app_context(), database.connection_context():
        type(user).update(is_active=False).where(type(user).id == user.id).execute()
    assert login(client, user.email).status_code == 422


def test_login_follows_next_only_within_the_site(client, user):
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    form = {"email": user.email, "password": PASSWORD, "csrf_token": token}
    assert client.post("/login?next=/settings/tokens", data=form).headers["Location"] == "/settings/tokens"
    client.post("/logout", data={"csrf_token": csrf_token_from(client.get("/").get_data(as_text=True))})
    for evil in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        token = csrf_token_from(client.get("/login").get_data(as_text=True))
        response = client.post(f"/login?next={evil}", data={**form, "csrf_token": token})
        assert response.headers["Location"] == "/", evil
        client.post("/logout", data={"csrf_token": csrf_token_from(client.get("/").get_data(as_text=True))})


def test_logout_ends_the_session(logged_in):
    token = csrf_token_from(logged_in.get("/").get_data(as_text=True))
    response = logged_in.post("/logout", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert logged_in.get("/").status_code == 302


def test_creating_a_token_in_settings_shows_it_once_and_it_works(logged_in, client):
    page = logged_in.get("/settings/tokens").get_data(as_text=True)
    response = logged_in.post("/settings/tokens", data={"name": "laptop", "csrf_token": csrf_token_from(page)})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    plaintext = html.split('aria-label="New API token" class="token-value"')[0].rsplit('value="', 1)[1].split('"')[0]
    assert plaintext.startswith("fts_")
    assert plaintext not in logged_in.get("/settings/tokens").get_data(as_text=True)
    api = client.get("/api/v1/datasets", headers={"Authorization": f"Bearer {plaintext}"})
    assert api.status_code == 200


def test_htmx_token_creation_returns_only_the_panel(logged_in):
    page = logged_in.get("/settings/tokens").get_data(as_text=True)
    response = logged_in.post("/settings/tokens", data={"name": "ci"},
                              headers={"HX-Request": "true", "X-CSRFToken": csrf_token_from(page)})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="tokens-panel">') and "<html" not in html
    assert "HX-Request" in response.headers["Vary"]


def test_token_name_is_required_and_the_error_sits_by_the_field(logged_in):
    page = logged_in.get("/settings/tokens").get_data(as_text=True)
    response = logged_in.post("/settings/tokens", data={"name": "", "csrf_token": csrf_token_from(page)})
    assert response.status_code == 422
    assert 'id="token-name-error"' in response.get_data(as_text=True)


def test_revoked_token_no_longer_authenticates(logged_in, client, user, make_token, app):
    plaintext = make_token(user, "to revoke")
    headers = {"Authorization": f"Bearer {plaintext}"}
    assert client.get("/api/v1/jobs", headers=headers).status_code == 200
    with app.app_context(), database.connection_context():
        token_id = ApiToken.get(ApiToken.name == "to revoke").id
    page = logged_in.get("/settings/tokens").get_data(as_text=True)
    response = logged_in.post(f"/settings/tokens/{token_id}/revoke",
                              headers={"HX-Request": "true", "X-CSRFToken": csrf_token_from(page)})
    assert response.status_code == 200 and "revoked" in response.get_data(as_text=True)
    refused = client.get("/api/v1/jobs", headers=headers)
    assert refused.status_code == 401
    assert refused.get_json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer fts_not-a-real-token", "Basic dXNlcjpwYXNz", "Token x"])
def test_api_refuses_missing_or_bad_tokens(client, header):
    response = client.get("/api/v1/datasets", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_api_ignores_the_session_cookie(logged_in):
    assert logged_in.get("/api/v1/datasets").status_code == 401


def test_token_of_an_inactive_user_is_refused(client, user, make_token, app):
    plaintext = make_token(user)
    with app.app_context(), database.connection_context():
        type(user).update(is_active=False).where(type(user).id == user.id).execute()
    assert client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {plaintext}"}).status_code == 401


def test_token_use_is_recorded(client, user, make_token, app):
    plaintext = make_token(user, "tracked")
    client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {plaintext}"})
    with app.app_context(), database.connection_context():
        assert ApiToken.get(ApiToken.name == "tracked").last_used_at is not None


def test_tokens_are_stored_hashed(user, make_token, app):
    plaintext = make_token(user, "hashed")
    with app.app_context(), database.connection_context():
        stored = ApiToken.get(ApiToken.name == "hashed")
    assert plaintext not in (stored.token_hash, stored.prefix)
    assert len(stored.token_hash) == 64


def test_passwords_are_stored_hashed(user):
    assert PASSWORD not in user.password_hash
    assert user.password_hash.startswith(("scrypt:", "pbkdf2:"))


def test_create_user_validates_each_field(app):
    with app.app_context(), database.connection_context(), pytest.raises(ValidationFailed) as caught:
        service.create_user("not-an-email", "short")
    assert set(caught.value.details) == {"email", "password"}


def test_create_user_refuses_a_taken_email(app, user):
    with app.app_context(), database.connection_context(), pytest.raises(Conflict):
        service.create_user(user.email.upper(), PASSWORD)
