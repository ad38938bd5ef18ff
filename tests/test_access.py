"""Every route is born protected: anonymous requests are refused everywhere but a short public list."""
from __future__ import annotations

import re

# Routes anyone may call, with why.
PUBLIC_ENDPOINTS = {
    "static",              # CSS and JavaScript
    "auth.login",          # the way in
    "ops.health_report",   # load balancers and monitors
    "ops.liveness",
    "ops.prometheus_metrics",  # Prometheus; closed by METRICS_TOKEN when one is set
    "api.openapi",         # the API's own description
    "openai.openapi",      # the OpenAI dialect's description
}


def concrete(rule) -> str:
    """The rule's URL with every variable filled in with 1."""
    return re.sub(r"<(?:\w+:)?\w+>", "1", rule.rule)


def test_anonymous_requests_are_refused_everywhere_but_the_public_list(app, client):
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(concrete(rule), method=method)
            if rule.rule.startswith(("/api/", "/v1/")):
                assert response.status_code == 401, f"{method} {rule.rule}"
            elif method == "GET":
                assert response.status_code == 302 and "/login" in response.headers["Location"], rule.rule
            else:
                # Anonymous state changes fail on CSRF before they reach the login check.
                assert response.status_code in (400, 302), f"{method} {rule.rule}"
            checked += 1
    assert checked >= 10


def test_the_public_routes_answer_anonymous_requests(client):
    for url in ("/login", "/api/v1/health/live", "/api/v1/openapi.json", "/static/css/studio.css"):
        assert client.get(url).status_code == 200, url
