"""The production nginx site (nginx/), rendered by its own start script, run by Debian's nginx in front of gunicorn."""
from __future__ import annotations

import gzip
import json

import pytest

from app.security import CONTENT_SECURITY_POLICY
from tests.support.data import as_jsonl
from tests.support.http import HeldUpload, fetch
from tests.support.logs import json_lines
from tests.support.waiting import wait_until
from tests.support.web import gunicorn, nginx_test_config, production_nginx, render_site, self_signed_certificate

MIB = 1024 * 1024
SECURITY_HEADERS = ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy",
                    "Permissions-Policy")
# Small limits, so that crossing them costs little: 1 MiB for any body, 3 MiB for a dataset file.
LIMITS = {"MAX_REQUEST_BYTES": str(MIB), "DATASET_MAX_BYTES": str(3 * MIB)}


@pytest.fixture
def settings(settings):
    """The app as compose runs it behind nginx: one trusted proxy, the same small body limits as nginx."""
    return settings.model_copy(update={"trusted_proxies": 1, "max_request_bytes": MIB,
                                       "dataset_max_bytes": 3 * MIB, "dataset_inline_validation_bytes": 4 * MIB})


@pytest.fixture
def token(user, make_token) -> str:
    """An API token of a signed-up user."""
    return make_token(user)


@pytest.fixture
def site(app, settings, tmp_path):
    """gunicorn (gunicorn.conf.py, two workers) behind the production nginx site."""
    with gunicorn(settings, tmp_path / "web.log") as upstream, \
            production_nginx(upstream.url, tmp_path / "nginx", **LIMITS) as served:
        yield served


def jsonl_of_size(size: int) -> bytes:
    """Valid text records adding up to about size bytes."""
    return as_jsonl([{"text": "x" * 990}] * (size // 1000))


def test_the_rendered_site_passes_nginx_t_over_http_and_https(tmp_path):
    plain = render_site(tmp_path / "http", "127.0.0.1:9")
    assert nginx_test_config(tmp_path / "http").returncode == 0
    certificate = self_signed_certificate(tmp_path / "live")
    render_site(tmp_path / "https", "127.0.0.1:9", NGINX_CERT_DIR=str(certificate), NGINX_HTTPS_LISTEN="127.0.0.1:9")
    result = nginx_test_config(tmp_path / "https")
    assert result.returncode == 0, result.stderr
    assert "ssl_certificate" not in (tmp_path / "http/conf.d/default.conf").read_text()
    assert f"{certificate}/fullchain.pem" in (tmp_path / "https/conf.d/default.conf").read_text()
    # The upload routes get DATASET_MAX_BYTES plus the app's 1 MiB of form overhead; the rest MAX_REQUEST_BYTES.
    locations = (tmp_path / "http/studio/locations.conf").read_text()
    assert f"client_max_body_size {int(plain.get('DATASET_MAX_BYTES', 536870912)) + MIB};" in locations
    assert "client_max_body_size 10485760;" in locations


def test_static_files_come_from_nginx_compressed_cached_and_with_the_apps_headers(site):
    plain = fetch(site.url, "/static/vendor/htmx.min.js", headers={"Accept-Encoding": "gzip"})
    versioned = fetch(site.url, "/static/css/studio.css?v=0.1.0")
    assert plain.status == versioned.status == 200
    assert plain.one("Content-Encoding") == "gzip" and b"htmx" in gzip.decompress(plain.body)
    assert plain.one("Cache-Control") == "max-age=3600"
    assert versioned.one("Cache-Control") == "max-age=31536000"
    assert not plain.values("X-Request-ID"), "the app answered, not nginx"
    for name in SECURITY_HEADERS:
        plain.one(name)
    expected_csp = "; ".join(f"{directive} {value}" for directive, value in CONTENT_SECURITY_POLICY.items())
    assert plain.one("Content-Security-Policy") == expected_csp
    assert fetch(site.url, "/static/missing.js").status == 404


def test_pages_and_api_are_proxied_with_each_security_header_sent_once(site):
    page = fetch(site.url, "/login")
    api = fetch(site.url, "/api/v1/health/live", headers={"X-Request-ID": "smoke-42"})
    assert page.status == api.status == 200 and b"csrf_token" in page.body
    for reply in (page, api):
        for name in SECURITY_HEADERS:
            reply.one(name)
    assert page.one("Server") == "nginx"
    # The request id the client sent is the one the app echoes and the one nginx logs.
    assert api.one("X-Request-ID") == "smoke-42"
    # nginx writes its access line once the answer has gone out, so the client may read the log first.
    wait_until(lambda: any(line["request_id"] == "smoke-42" and line["path"] == "/api/v1/health/live"
                           for line in (json.loads(text) for text in site.log_lines() if text.startswith("{"))),
               10, "nginx to log the request")


def test_bodies_are_limited_per_route(site, token):
    too_big_form = fetch(site.url, "/login", "POST", body=b"x" * (MIB + 1),
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert too_big_form.status == 413 and not too_big_form.values("X-Request-ID")
    for name in SECURITY_HEADERS:
        too_big_form.one(name)
    accepted = HeldUpload(site.url, token, jsonl_of_size(2 * MIB))
    accepted.start(len(accepted.body))
    assert accepted.finish().status == 201
    refused = HeldUpload(site.url, token, jsonl_of_size(5 * MIB))
    refused.start(0)
    assert refused.finish().status == 413


def test_uploads_stream_to_the_app_before_the_body_is_complete(site, settings, token):
    upload = HeldUpload(site.url, token, jsonl_of_size(2 * MIB))
    upload.start(256 * 1024)
    # With request buffering on, nginx would hold the body until its last byte; the app sees it at once.
    wait_until(lambda: list(settings.resolved_storage_dir.rglob(".upload-*")), 30, "the app to receive the upload")
    reply = upload.finish()
    assert reply.status == 201, reply.body
    assert json.loads(reply.body)["size_bytes"] == len(jsonl_of_size(2 * MIB))


def test_the_rate_limiter_sees_each_client_address_through_nginx(app, settings, tmp_path):
    limited = settings.model_copy(update={"rate_limit_global": "3/minute"})
    with gunicorn(limited, tmp_path / "web.log") as upstream, \
            production_nginx(upstream.url, tmp_path / "nginx") as served:
        first = [fetch(served.url, "/login", source="127.0.0.2").status for _ in range(4)]
        second = [fetch(served.url, "/login", source="127.0.0.3").status for _ in range(4)]
        forged = fetch(served.url, "/login", source="127.0.0.2", headers={"X-Forwarded-For": "127.0.0.9"})
    assert first == second == [200, 200, 200, 429]
    assert forged.status == 429 and int(forged.one("Retry-After")) >= 1
    clients = {line["client_ip"] for line in json_lines(tmp_path / "web.log") if line.get("path") == "/login"}
    assert clients == {"127.0.0.2", "127.0.0.3"}


def test_the_acme_challenge_is_answered_from_the_webroot(site):
    challenge = site.folder / "acme/.well-known/acme-challenge"
    challenge.mkdir(parents=True)
    (challenge / "token-123").write_text("token-123.key")
    reply = fetch(site.url, "/.well-known/acme-challenge/token-123")
    assert reply.status == 200 and reply.body == b"token-123.key"


def test_with_a_certificate_http_redirects_and_https_reaches_the_app_without_a_loop(app, settings, tmp_path):
    secure = settings.model_copy(update={"force_https": True})
    certificate = self_signed_certificate(tmp_path / "live")
    with gunicorn(secure, tmp_path / "web.log") as upstream, \
            production_nginx(upstream.url, tmp_path / "nginx", NGINX_CERT_DIR=str(certificate)) as served:
        redirected = fetch(served.url, "/login?next=/datasets", headers={"Host": "studio.example.com"})
        health = fetch(served.url, "/nginx-health")
        page = fetch(served.https_url, "/login")
        static = fetch(served.https_url, "/static/css/studio.css")
    assert redirected.status == 301
    assert redirected.one("Location") == "https://studio.example.com/login?next=/datasets"
    assert health.status == 200
    # nginx says https (X-Forwarded-Proto) and the app, trusting it, neither redirects nor repeats HSTS.
    assert page.status == 200 and b"csrf_token" in page.body
    assert page.one("Strict-Transport-Security").startswith("max-age=31556926")
    assert "Secure" in page.one("Set-Cookie")
    # What nginx adds to its own answers is what the app sends on its.
    assert static.status == 200 and static.one("Strict-Transport-Security") == page.one("Strict-Transport-Security")
