"""scripts/test_production.sh against a real gunicorn, alone and behind the production nginx."""
from __future__ import annotations

import subprocess

import pytest

from app.settings import PROJECT_ROOT
from tests.support.web import gunicorn, production_nginx

METRICS_TOKEN = "metrics-token-for-the-smoke-test-0123456789"


@pytest.fixture
def settings(settings):
    """A small global budget, so the rate-limit check needs few requests; metrics behind a token."""
    return settings.model_copy(update={"rate_limit_global": "30/minute", "metrics_token": METRICS_TOKEN,
                                       "trusted_proxies": 1})


def smoke_test(url: str, *args: str) -> subprocess.CompletedProcess:
    """Run the smoke test against url."""
    return subprocess.run(["bash", str(PROJECT_ROOT / "scripts/test_production.sh"), url, "--rate-limit-max", "60",
                           *args], capture_output=True, text=True, timeout=120)


def test_a_deployment_behind_nginx_passes_every_check(app, settings, tmp_path):
    with gunicorn(settings, tmp_path / "web.log") as upstream, \
            production_nginx(upstream.url, tmp_path / "nginx") as site:
        result = smoke_test(site.url, "--metrics-token", METRICS_TOKEN)
    assert result.returncode == 0, result.stdout + result.stderr
    for check in ("liveness", "header Content-Security-Policy", "login page", "static files: cached",
                  "metrics: refused without the token", "metrics: 200 with the token", "rate limit: 429 after"):
        assert f"ok    {check}" in result.stdout, result.stdout
    assert "FAIL" not in result.stdout


def test_gunicorn_alone_passes_but_is_told_its_static_files_are_not_cached(app, settings, tmp_path):
    with gunicorn(settings, tmp_path / "web.log") as web:
        result = smoke_test(web.url, "--metrics-token", METRICS_TOKEN)
    assert result.returncode == 0, result.stdout
    assert "warn  static files: served without caching" in result.stdout


def test_open_metrics_and_a_wrong_token_fail_the_smoke_test(app, settings, tmp_path):
    open_metrics = settings.model_copy(update={"metrics_token": ""})
    with gunicorn(open_metrics, tmp_path / "web.log") as web:
        result = smoke_test(web.url, "--skip-rate-limit", "--metrics-token", "wrong")
    assert result.returncode == 1
    assert "FAIL  metrics: /api/v1/metrics is open to anyone" in result.stdout
    assert "1 check(s) failed" in result.stdout
