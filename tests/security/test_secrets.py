"""Secrets never reach error pages, API answers or log lines; tokens are compared in constant time."""
from __future__ import annotations

import hmac
import logging

import pytest

from app.logs import REDACTED, RedactingFilter, redact, secret_values
from tests.support.accounts import csrf_token_from
from tests.support.settings import make_settings

KAGGLE_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def test_a_failed_login_page_does_not_echo_the_password(client, user):
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    form = {"email": user.email, "password": "my-very-secret-guess", "csrf_token": token}
    response = client.post("/login", data=form)
    assert response.status_code == 422
    assert "my-very-secret-guess" not in response.get_data(as_text=True)


def test_a_refused_token_is_not_echoed(client):
    response = client.get("/api/v1/jobs", headers={"Authorization": "Bearer fts_stolen-or-mistyped-token"})
    assert response.status_code == 401
    assert "fts_stolen" not in response.get_data(as_text=True)


def crash():
    """A view that fails with secrets in its error."""
    raise RuntimeError(f"boom with postgresql://studio:db-pass-1234@db/x and key {KAGGLE_KEY}")


def test_an_unexpected_error_shows_nothing_of_itself_and_its_log_is_redacted(make_app, make_user, make_token,
                                                                             capsys):
    app = make_app(kaggle_key=KAGGLE_KEY)
    app.add_url_rule("/api/v1/crash", "crash", crash)
    token = make_token(make_user())
    response = app.test_client().get("/api/v1/crash", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "db-pass-1234" not in body and KAGGLE_KEY not in body and "boom" not in body
    logged = capsys.readouterr().out
    assert "boom with" in logged and "RuntimeError" in logged
    assert "db-pass-1234" not in logged and KAGGLE_KEY not in logged


@pytest.mark.parametrize("line, secret", [
    ("GET /api/v1/jobs Authorization: Bearer fts_AbC123xyz_-987654", "fts_AbC123xyz_-987654"),
    ("connecting to postgresql://studio:Pa55-w0rd!@db:5432/studio", "Pa55-w0rd!"),
    ("form: email=a@b.c&password=hunter2hunter2&csrf_token=abc", "hunter2hunter2"),
    ('{"kaggle_key": "' + KAGGLE_KEY + '"}', KAGGLE_KEY),
    ("Cookie: studio_session=eyJfZnJlc2giOmZhbHNlfQ.Zz.abc", "eyJfZnJlc2giOmZhbHNlfQ"),
    ("redis://:r3dis-secret-pw@redis:6379/0", "r3dis-secret-pw"),
])
def test_secret_looking_text_is_redacted(line, secret):
    redacted = redact(line)
    assert secret not in redacted and REDACTED in redacted


def test_configured_secrets_are_redacted_wherever_they_appear(tmp_path):
    settings = make_settings(tmp_path, "postgresql://studio:a-db-password@db/x", "redis://127.0.0.1:6379/0",
                             kaggle_key=KAGGLE_KEY)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "kaggle said %s to %s", (KAGGLE_KEY, "a-db-password"),
                               None)
    RedactingFilter(secret_values(settings)).filter(record)
    assert record.getMessage() == f"kaggle said {REDACTED} to {REDACTED}"


def test_api_tokens_are_compared_in_constant_time(monkeypatch, app, user, make_token):
    token = make_token(user)
    compared = []
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: compared.append((a, b)) or a == b)
    assert app.test_client().get("/api/v1/jobs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert compared
