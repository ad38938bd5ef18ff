"""Rate limits per client: the global budget, expensive endpoints, polling, exemptions and the login slow-down."""
from __future__ import annotations

import json

from app.api.openapi import OPENAPI_PATH
from app.auth import throttle
from app.security import polling
from tests.support.accounts import PASSWORD, csrf_token_from, login


def test_the_global_limit_answers_429_as_json_with_retry_after(make_app):
    client = make_app(rate_limit_global="3/minute").test_client()
    assert [client.get("/api/v1/openapi.json").status_code for _ in range(3)] == [200] * 3
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 429
    error = response.get_json()["error"]
    assert error["code"] == "rate_limited" and error["details"]["limit"] == "3 per 1 minute"
    assert 1 <= int(response.headers["Retry-After"]) <= 61
    assert error["details"]["retry_after"] == int(response.headers["Retry-After"])


def test_the_global_limit_is_one_budget_for_every_endpoint_and_pages_get_a_page(make_app):
    client = make_app(rate_limit_global="3/minute").test_client()
    for url in ("/login", "/api/v1/openapi.json", "/no-such-page"):
        assert client.get(url).status_code in (200, 404), url
    response = client.get("/login")
    assert response.status_code == 429
    assert response.mimetype == "text/html" and "Too many requests" in response.get_data(as_text=True)


def test_probes_spend_their_own_budget_and_static_files_none(make_app):
    client = make_app(rate_limit_global="2/minute").test_client()
    for url in ("/api/v1/health/live", "/api/v1/health", "/static/css/studio.css") * 3:
        assert client.get(url).status_code in (200, 503), url
    assert client.get("/login").status_code == 200


def test_health_and_metrics_are_rate_limited_per_client_like_other_probes(make_app):
    client = make_app(rate_limit_probes="3/minute").test_client()
    assert [client.get("/api/v1/health").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert client.get("/api/v1/metrics").status_code == 429  # one budget for every probe of a client
    other = make_app(rate_limit_probes="3/minute").test_client()
    other.environ_base["REMOTE_ADDR"] = "198.51.100.9"
    assert other.get("/api/v1/health").status_code == 200


def test_login_posts_are_expensive_but_showing_the_form_is_not(make_app):
    client = make_app(rate_limit_expensive="3/minute").test_client()
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    form = {"email": "nobody@example.com", "password": "wrong password", "csrf_token": token}
    assert [client.post("/login", data=form).status_code for _ in range(4)] == [422, 422, 422, 429]
    assert client.get("/login").status_code == 200


def test_token_creation_is_expensive(make_app, make_user):
    app = make_app(rate_limit_expensive="2/minute")
    client = app.test_client()
    login(client, make_user().email)
    token = csrf_token_from(client.get("/settings/tokens").get_data(as_text=True))
    codes = [client.post("/settings/tokens", data={"name": f"t{i}", "csrf_token": token}).status_code
             for i in range(3)]
    assert codes == [200, 200, 429]


def test_polling_endpoints_spend_their_own_budget_not_the_global_one(make_app):
    app = make_app(rate_limit_global="2/minute", rate_limit_polling="4/minute")
    app.add_url_rule("/poll-me", "poll_me", polling(lambda: "progress"))
    client = app.test_client()
    assert [client.get("/poll-me").status_code for _ in range(5)] == [200] * 4 + [429]
    assert [client.get("/login").status_code for _ in range(3)] == [200, 200, 429]


def test_limits_can_be_switched_off_outside_production(make_app):
    client = make_app(rate_limits_enabled=False, rate_limit_global="1/minute").test_client()
    assert {client.get("/login").status_code for _ in range(3)} == {200}


def test_repeated_failures_make_an_account_wait_even_with_the_right_password(make_app, make_user, redis):
    app = make_app()
    victim, other = make_user(), make_user()
    client = app.test_client()
    codes = [login(client, victim.email, "wrong password!").status_code for _ in range(throttle.FREE_LOGIN_FAILURES)]
    assert codes == [422] * throttle.FREE_LOGIN_FAILURES
    refused = login(client, victim.email, PASSWORD)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) == throttle.FIRST_LOGIN_DELAY_SECONDS
    assert "Too many failed sign-ins" in refused.get_data(as_text=True)
    assert login(app.test_client(), other.email).status_code == 302  # other accounts are unaffected


def test_each_further_failure_doubles_the_wait_and_success_forgets_them(make_app, make_user, redis):
    app = make_app()
    user = make_user()
    client = app.test_client()
    waits = []
    for _ in range(3):
        for _ in range(throttle.FREE_LOGIN_FAILURES if not waits else 1):
            login(client, user.email, "wrong password!")
        waits.append(int(login(client, user.email).headers["Retry-After"]))
        redis.delete(*redis.keys("login-wait:*"))  # the wait has passed
    assert waits == [2, 4, 8]
    assert login(client, user.email).status_code == 302
    assert redis.keys("login-*") == []


def test_the_api_document_tells_clients_of_every_limited_operation_about_429():
    document = json.loads(OPENAPI_PATH.read_text())
    undocumented = [f"{method.upper()} {path}" for path, operations in document["paths"].items()
                    for method, operation in operations.items()
                    if "429" not in operation["responses"]]
    assert undocumented == []
    assert "Retry-After" in document["components"]["responses"]["RateLimited"]["headers"]
