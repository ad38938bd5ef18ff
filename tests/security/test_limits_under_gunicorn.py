"""Against real gunicorn with two workers on real Redis: limits hold in total, whoever the client claims to be."""
from __future__ import annotations

from tests.support.http import fetch, fetch_many, statuses
from tests.support.web import gunicorn, production_nginx


def test_global_and_expensive_limits_hold_in_total_across_workers(server_settings, tmp_path):
    with gunicorn(server_settings, tmp_path / "web.log", rate_limit_global="20/minute",
                  rate_limit_expensive="3/minute") as web:
        logins = fetch_many(web.url, [{"path": "/login", "method": "POST"}] * 12)
        pages = fetch_many(web.url, [{"path": "/api/v1/openapi.json"}] * 15)
    # Three login posts reach the form (and fail its CSRF check); the other nine are refused.
    assert statuses(logins) == {400: 3, 429: 9}
    # The global budget of 20 already paid for 12 logins, so 8 of the 15 reads pass.
    assert statuses(pages) == {200: 8, 429: 7}
    assert all(int(reply.one("Retry-After")) >= 1 for reply in pages if reply.status == 429)


def test_a_forged_forwarded_for_gains_nothing_without_a_trusted_proxy(server_settings, tmp_path):
    with gunicorn(server_settings, tmp_path / "web.log", rate_limit_global="5/minute", trusted_proxies=0) as web:
        forged = [{"path": "/login", "headers": {"X-Forwarded-For": f"198.51.100.{i}", "X-Real-IP": f"10.0.0.{i}"}}
                  for i in range(10)]
        replies = fetch_many(web.url, forged)
    assert statuses(replies) == {200: 5, 429: 5}


def test_a_forged_forwarded_proto_from_this_host_is_not_trusted(server_settings, tmp_path):
    # gunicorn would trust X-Forwarded-Proto from 127.0.0.1 by default; gunicorn.conf.py leaves that to the app.
    with gunicorn(server_settings, tmp_path / "web.log", force_https="true") as web:
        reply = fetch(web.url, "/login", headers={"X-Forwarded-Proto": "https"})
    assert reply.status == 301 and reply.one("Location").startswith("https://")


def test_behind_nginx_each_client_is_limited_on_its_own(server_settings, tmp_path):
    with gunicorn(server_settings, tmp_path / "web.log", rate_limit_global="4/minute", trusted_proxies=1) as web, \
            production_nginx(web.url, tmp_path / "nginx") as site:
        first = [fetch(site.url, "/login", source="127.0.0.2").status for _ in range(5)]
        second = [fetch(site.url, "/login", source="127.0.0.3").status for _ in range(5)]
        # nginx appends the real address, so a client naming someone else is still counted as itself.
        disguised = fetch(site.url, "/login", source="127.0.0.2", headers={"X-Forwarded-For": "127.0.0.9"})
        innocent = fetch(site.url, "/login", source="127.0.0.9")
    assert first == second == [200] * 4 + [429]
    assert disguised.status == 429
    assert innocent.status == 200


def test_behind_nginx_with_tls_at_the_proxy_https_is_served_without_a_redirect_loop(server_settings, tmp_path):
    # nginx without a certificate speaks plain HTTP, so it forwards X-Forwarded-Proto: http and the app redirects
    # once; a proxy that terminated TLS forwards https, which the app then trusts.
    with gunicorn(server_settings, tmp_path / "web.log", force_https="true", trusted_proxies=1) as web, \
            production_nginx(web.url, tmp_path / "nginx") as site:
        plain = fetch(site.url, "/login")
        direct_https = fetch(web.url, "/login", headers={"X-Forwarded-Proto": "https"})
    assert plain.status == 301 and plain.one("Location").startswith("https://127.0.0.1")
    assert direct_https.status == 200 and direct_https.values("Strict-Transport-Security")
