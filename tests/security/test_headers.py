"""Security headers on every kind of response, HTTPS behind a trusted proxy, and cookies browsers guard."""
from __future__ import annotations

import re

import pytest

from app.settings import PROJECT_ROOT
from tests.support.accounts import login


def policy(response) -> dict[str, str]:
    """The Content-Security-Policy as directive → sources."""
    header = response.headers["Content-Security-Policy"]
    return dict(part.strip().split(" ", 1) for part in header.split(";") if part.strip())


def assert_security_headers(response, what: str) -> None:
    """Fail unless response carries the full set of security headers."""
    csp = policy(response)
    assert csp["default-src"] == "'self'", what
    assert csp["frame-ancestors"] == "'none'" and csp["object-src"] == "'none'", what
    assert "unsafe-inline" not in str(csp) and "unsafe-eval" not in str(csp), what
    assert response.headers["X-Frame-Options"] == "DENY", what
    assert response.headers["X-Content-Type-Options"] == "nosniff", what
    assert response.headers["Referrer-Policy"] == "same-origin", what
    assert {"camera=()", "microphone=()", "geolocation=()"} <= set(response.headers["Permissions-Policy"].split(", "))


def test_every_kind_of_response_carries_the_security_headers(logged_in, user, make_token):
    api = {"Authorization": f"Bearer {make_token(user)}"}
    responses = {
        "page": logged_in.get("/"),
        "login page": logged_in.get("/login"),
        "htmx partial": logged_in.post("/settings/tokens/999/revoke", headers={"HX-Request": "true"}),
        "page 404": logged_in.get("/no-such-page"),
        "api json": logged_in.get("/api/v1/jobs", headers=api),
        "api 401": logged_in.get("/api/v1/jobs"),
        "api 404": logged_in.get("/api/v1/jobs/999", headers=api),
        "health": logged_in.get("/api/v1/health/live"),
        "static file": logged_in.get("/static/css/studio.css"),
    }
    for what, response in responses.items():
        assert_security_headers(response, what)
    assert responses["api json"].status_code == 200 and responses["page 404"].status_code == 404


def test_without_force_https_plain_http_is_served_without_hsts(client):
    response = client.get("/login")
    assert response.status_code == 200
    assert "Strict-Transport-Security" not in response.headers


def test_force_https_redirects_plain_http_permanently(make_app):
    response = make_app(force_https=True).test_client().get("/login?next=/x")
    assert response.status_code == 301
    assert response.headers["Location"] == "https://localhost/login?next=/x"


def test_behind_a_trusted_proxy_https_is_served_with_hsts(make_app):
    client = make_app(force_https=True, trusted_proxies=1).test_client()
    response = client.get("/login", headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"})
    assert response.status_code == 200
    max_age = re.fullmatch(r"max-age=(\d+)(; includeSubDomains)?", response.headers["Strict-Transport-Security"])
    assert int(max_age.group(1)) >= 365 * 24 * 3600


def test_a_forged_forwarded_proto_without_a_trusted_proxy_is_still_redirected(make_app):
    response = make_app(force_https=True, trusted_proxies=0).test_client().get(
        "/login", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 301
    assert "Strict-Transport-Security" not in response.headers


@pytest.mark.parametrize("path", ["/api/v1/health", "/api/v1/health/live"])
def test_health_probes_are_never_redirected(make_app, path):
    # Container health checks and load balancers call the app over plain HTTP from inside the network.
    response = make_app(force_https=True).test_client().get(path)
    assert response.status_code in (200, 503)


def session_cookie(response) -> str:
    """The Set-Cookie header of the session cookie."""
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("studio_session=")]
    assert cookies, response.headers
    return cookies[0]


def test_session_cookie_is_secure_httponly_and_samesite_over_https(make_app, make_user):
    client = make_app(force_https=True, trusted_proxies=1).test_client()
    # Over HTTPS, Flask-WTF also checks that the form was posted from this site.
    client.environ_base.update(HTTP_X_FORWARDED_PROTO="https", HTTP_REFERER="https://localhost/login")
    response = login(client, make_user().email)
    assert response.status_code == 302
    flags = {flag.strip().lower() for flag in session_cookie(response).split(";")[1:]}
    assert {"secure", "httponly", "samesite=lax"} <= flags


def test_session_cookie_is_httponly_and_samesite_in_development(client, user):
    flags = {flag.strip().lower() for flag in session_cookie(login(client, user.email)).split(";")[1:]}
    assert {"httponly", "samesite=lax"} <= flags
    assert "secure" not in flags


INLINE_CODE = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|<style\b|\sstyle=|\son[a-z]+=|\shx-on|javascript:", re.I)


def test_templates_need_no_inline_script_or_style_so_the_strict_csp_holds():
    templates = list((PROJECT_ROOT / "templates").rglob("*.html"))
    offenders = {str(t.relative_to(PROJECT_ROOT)): INLINE_CODE.findall(t.read_text()) for t in templates}
    assert len(templates) >= 5
    assert {name: found for name, found in offenders.items() if found} == {}
