"""Bodies over MAX_REQUEST_BYTES (10 MB) are refused with 413: JSON for the API, a page for the browser."""
from __future__ import annotations

from flask import jsonify, request

from app.extensions import csrf
from tests.support.http import fetch
from tests.support.web import gunicorn

ELEVEN_MB = b"x" * (11 * 1024 * 1024)


def test_an_11_mb_form_post_gets_a_413_page(client):
    response = client.post("/login", data=ELEVEN_MB, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413
    assert response.mimetype == "text/html"


def echo_size():
    """An API-style route that reads its whole body, as job creation will."""
    return jsonify(size=len(request.get_data()))


def test_an_11_mb_json_body_to_the_api_gets_a_413_json_error(app, client, user, make_token):
    app.add_url_rule("/api/v1/echo-size", "echo_size", csrf.exempt(echo_size), methods=["POST"])
    headers = {"Authorization": f"Bearer {make_token(user)}", "Content-Type": "application/json"}
    assert client.post("/api/v1/echo-size", data=b"{}", headers=headers).get_json() == {"size": 2}
    response = client.post("/api/v1/echo-size", data=ELEVEN_MB, headers=headers)
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"


def test_the_limit_is_configurable(make_app):
    client = make_app(max_request_bytes=2048).test_client()
    response = client.post("/login", data=b"x" * 4096, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413


def test_gunicorn_refuses_an_11_mb_body_before_reading_it(server_settings, tmp_path):
    with gunicorn(server_settings, tmp_path / "web.log", workers=2) as web:
        reply = fetch(web.url, "/login", method="POST", body=ELEVEN_MB,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert fetch(web.url, "/api/v1/health/live").status == 200  # the worker is fine afterwards
    assert reply.status == 413
