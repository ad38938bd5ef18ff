"""Every state-changing page request needs this session's CSRF token, as a form field or (htmx) the X-CSRFToken
header: without it the answer is 400 and nothing changes. The API, which takes no cookies, needs none."""
from __future__ import annotations

import io
import itertools
import re

import pytest

from app.db import database
from app.models import ApiToken, Completion, Dataset, Job, KaggleAccount, User, WebhookDelivery, WebhookEndpoint
from tests.support.accounts import PASSWORD, csrf_token_from, login
from tests.support.factories import make_dataset, make_job

REFUSAL = "The form expired or was not sent from this site"
FORGERIES = {"no token": None, "an empty token": "", "a made-up token": "forged-token",
             "a token signed with another key": "IjEyMyI.Zm9v.YmFy"}


def upload_form() -> dict:
    """The dataset upload form, its file last as a browser sends it."""
    return {"name": "forged", "file": (io.BytesIO(b'{"text": "forged"}\n' * 12), "forged.jsonl")}


# Every state-changing page route (POST /login aside: a test of its own below) and what a browser sends to it.
CHANGES = {
    ("POST", "/logout"): dict,
    ("POST", "/settings/tokens"): lambda: {"name": "forged"},
    ("POST", "/settings/tokens/<int:token_id>/revoke"): dict,
    ("POST", "/datasets"): upload_form,
    ("DELETE", "/datasets/<int:dataset_id>"): dict,
    ("POST", "/datasets/<int:dataset_id>/delete"): dict,
    ("POST", "/jobs"): lambda: {"name": "forged", "base_model": "tiny-random-llama", "method": "lora"},
    ("POST", "/jobs/<int:job_id>/cancel"): dict,
    ("POST", "/language"): lambda: {"locale": "es"},
    ("POST", "/jobs/<int:job_id>/playground"): lambda: {"message": "forged", "max_tokens": "8"},
    ("POST", "/settings/webhooks"): lambda: {"url": "https://example.com/forged", "events": "job.running"},
    ("POST", "/settings/webhooks/<int:endpoint_id>/delete"): dict,
    ("POST", "/settings/webhooks/<int:endpoint_id>/enable"): dict,
    ("POST", "/settings/webhooks/<int:endpoint_id>/rotate"): dict,
    ("POST", "/settings/webhooks/<int:endpoint_id>/deliveries/<int:delivery_id>/redeliver"): dict,
    ("POST", "/settings/kaggle"): lambda: {"username": "forged", "key": "forged-key"},
    ("POST", "/settings/kaggle/unlink"): dict,
    ("POST", "/admin/users/<int:user_id>/limits"): lambda: {"max_active_jobs": "0"},
}


@pytest.fixture
def owned(app, user, make_token) -> dict:
    """The signed-in user's token, dataset and job, by the names of the URL variables."""
    make_token(user, "existing")
    with app.app_context(), database.connection_context():
        job = make_job(user, status="running")
        endpoint = WebhookEndpoint.create(owner=user, url="https://example.com/hook", events=["job.running"],
                                          secret_encrypted="sealed", enabled=False, disabled_reason="failures")
        delivery = WebhookDelivery.create(endpoint=endpoint, event_id="evt_1", event_type="job.running", body="{}",
                                          status="failed")
        KaggleAccount.create(user=user, username="linked", kind="key", secret="sealed")
        return {"token_id": ApiToken.get(ApiToken.user == user.id).id, "dataset_id": make_dataset(user).id,
                "job_id": job.id, "endpoint_id": endpoint.id, "delivery_id": delivery.id, "user_id": user.id}


def state(app, client) -> dict:
    """What a forged request could change: who is signed in, tokens, datasets and files, jobs, webhooks, completions."""
    signed_in = client.get("/").status_code == 200
    storage = app.extensions["settings"].resolved_storage_dir
    with app.app_context(), database.connection_context():
        return {"signed in": signed_in,
                "tokens": sorted((token.name, token.revoked_at) for token in ApiToken.select()),
                "datasets": sorted(dataset.id for dataset in Dataset.select()),
                "stored files": sorted(str(path) for path in storage.rglob("*") if path.is_file()),
                "jobs": sorted((job.id, job.status, job.cancel_requested_at) for job in Job.select()),
                "languages": sorted(str(user.locale) for user in User.select()),
                "webhooks": sorted((e.id, e.url, e.enabled, e.secret_encrypted) for e in WebhookEndpoint.select()),
                "deliveries": sorted((d.id, d.status, d.attempts) for d in WebhookDelivery.select()),
                "completions": Completion.select().count(),
                "kaggle accounts": sorted((a.user_id, a.username, a.secret) for a in KaggleAccount.select()),
                "limits": sorted((u.id, u.max_active_jobs) for u in User.select())}


def send(client, method: str, path: str, data: dict, token: str | None, as_htmx: bool):
    """The request as a plain form (token as its first field) or as htmx sends it (token in the header)."""
    if as_htmx:
        headers = {"HX-Request": "true", **({"X-CSRFToken": token} if token is not None else {})}
        return client.open(path, method=method, data=data, headers=headers)
    return client.open(path, method=method, data={**({"csrf_token": token} if token is not None else {}), **data})


def session_token(client) -> str:
    """The CSRF token of the client's session, as its pages render it."""
    return csrf_token_from(client.get("/settings/tokens").get_data(as_text=True))


def test_every_state_changing_page_route_is_checked_here(app):
    # The API and the OpenAI dialect (/v1) take bearer tokens only, never the session's cookie.
    routes = {(method, rule.rule) for rule in app.url_map.iter_rules() if not rule.rule.startswith(("/api/", "/v1/"))
              for method in rule.methods - {"GET", "HEAD", "OPTIONS"}}
    assert routes == set(CHANGES) | {("POST", "/login")}


@pytest.mark.parametrize("method, rule", sorted(CHANGES))
def test_a_request_without_the_sessions_token_is_refused_and_changes_nothing(app, logged_in, make_user, owned,
                                                                             method, rule):
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda match: str(owned[match.group(1)]), rule)
    stranger = app.test_client()
    login(stranger, make_user().email)
    forgeries = {**FORGERIES, "another session's token": session_token(stranger)}
    before = state(app, logged_in)
    for (name, token), as_htmx in itertools.product(forgeries.items(), (False, True)):
        way = f"{method} {path} with {name} in the {'X-CSRFToken header' if as_htmx else 'form'}"
        response = send(logged_in, method, path, CHANGES[(method, rule)](), token, as_htmx)
        assert response.status_code == 400, f"{way}: {response.status_code}"
        assert REFUSAL in response.get_data(as_text=True), way
        assert state(app, logged_in) == before, f"{way} changed something"


@pytest.mark.parametrize("token", FORGERIES.values(), ids=FORGERIES.keys())
def test_login_without_the_sessions_token_is_refused_and_signs_nobody_in(client, user, token):
    client.get("/login")  # the session now holds a token, which the form must send back
    form = {**({"csrf_token": token} if token is not None else {}), "email": user.email, "password": PASSWORD}
    response = client.post("/login", data=form)
    assert response.status_code == 400
    assert REFUSAL in response.get_data(as_text=True)
    assert client.get("/").status_code == 302, "nobody is signed in"


def test_login_with_the_sessions_token_signs_in(client, user):
    assert login(client, user.email).status_code == 302
    assert client.get("/").status_code == 200


def test_the_sessions_token_lets_a_form_and_an_htmx_request_through(app, logged_in):
    token = session_token(logged_in)
    by_form = logged_in.post("/settings/tokens", data={"csrf_token": token, "name": "by form"})
    by_htmx = logged_in.post("/settings/tokens", data={"name": "by htmx"},
                             headers={"HX-Request": "true", "X-CSRFToken": token})
    assert (by_form.status_code, by_htmx.status_code) == (200, 200)
    with app.app_context(), database.connection_context():
        assert sorted(token.name for token in ApiToken.select()) == ["by form", "by htmx"]


def test_the_api_needs_no_token(client, user, make_token):
    response = client.post("/api/v1/jobs", json={}, headers={"Authorization": f"Bearer {make_token(user)}"})
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "validation_failed"
