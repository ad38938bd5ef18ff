"""Walk the whole URL map as an intruder: other users' datasets, jobs, events, artifacts, tokens, completions and
webhooks are 404 (in /api, /v1 and the pages), and no list or page shows them."""
from __future__ import annotations

import re

import pytest

from app.db import database
from app.models import ApiToken, Completion, Dataset, Job, User, WebhookDelivery, WebhookEndpoint
from tests.support.accounts import csrf_token_from, login
from tests.support.factories import make_artifact, make_dataset, make_event, make_job

# Routes that need no owner: the public ones and static files.
UNOWNED_ENDPOINTS = {"static", "auth.login", "auth.logout", "api.openapi", "ops.health_report", "ops.liveness"}


@pytest.fixture
def victim_objects(app, make_user, make_token):
    """A user's dataset, job (with an event and an artifact) and API token; names unique to this test."""
    victim = make_user()
    make_token(victim, "victim token")
    with app.app_context(), database.connection_context():
        dataset = make_dataset(victim)
        job = make_job(victim, dataset)
        make_event(job, message="victim secret log line")
        artifact = make_artifact(job)
        token = ApiToken.get(ApiToken.user == victim.id)
        completion = Completion.create(job=job, owner=victim, messages=[{"role": "user", "content": "hi"}],
                                       max_tokens=4)
        endpoint = WebhookEndpoint.create(owner=victim, url="https://example.com/victim", events=["job.running"],
                                          secret_encrypted="sealed")
        delivery = WebhookDelivery.create(endpoint=endpoint, event_id="evt_victim", event_type="job.running",
                                          body="{}")
    return {"dataset_id": dataset.id, "job_id": job.id, "token_id": token.id, "name": artifact.name,
            "user_id": victim.id, "position": 0, "names": [dataset.name, job.name],
            "completion_id": completion.id, "endpoint_id": endpoint.id, "delivery_id": delivery.id,
            "file_id": f"file-{dataset.id}", "fine_tuning_job_id": f"ftjob-{job.id}",
            "model_id": f"ft:{job.base_model}:victim:ftjob-{job.id}"}


@pytest.fixture
def intruder(app, make_user, make_token):
    """A signed-in client of another user, with that user's CSRF token and API headers."""
    user = make_user()
    client = app.test_client()
    login(client, user.email)
    csrf = csrf_token_from(client.get("/settings/tokens").get_data(as_text=True))
    return client, {"X-CSRFToken": csrf, "Authorization": f"Bearer {make_token(user)}"}


def url_with(rule, values: dict) -> str:
    """The rule's URL with each variable set to the victim's object; unknown variables fail the test."""
    def value(match):
        name = match.group(1)
        assert name in values, f"{rule.rule}: map <{name}> to one of the victim's objects in this test"
        return str(values[name])

    return re.sub(r"<(?:\w+:)?(\w+)>", value, rule.rule)


def test_every_route_with_an_id_answers_404_for_another_users_object(app, victim_objects, intruder):
    client, headers = intruder
    checked = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in UNOWNED_ENDPOINTS or not rule.arguments:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(url_with(rule, victim_objects), method=method, headers=headers,
                                   json={"max_active_jobs": 0} if method == "PATCH" else None)
            # Admin routes say "not for you" to everyone else, whatever the object: there is nothing to hide.
            expected = 403 if rule.rule.startswith("/api/v1/admin/") else 404
            assert response.status_code == expected, f"{method} {rule.rule}: {response.status_code}"
            if expected == 404 and rule.rule.startswith("/api/"):
                assert response.get_json()["error"]["code"] == "not_found", f"{method} {rule.rule}"
            checked.append(f"{method} {rule.rule}")
    assert len(checked) >= 8
    with app.app_context(), database.connection_context():
        assert Dataset.get_by_id(victim_objects["dataset_id"])
        assert Job.get_by_id(victim_objects["job_id"]).cancel_requested_at is None
        assert ApiToken.get_by_id(victim_objects["token_id"]).revoked_at is None
        assert User.get_by_id(victim_objects["user_id"]).max_active_jobs is None


def test_no_list_or_page_shows_another_users_objects(app, victim_objects, intruder):
    client, headers = intruder
    for rule in app.url_map.iter_rules():
        if rule.endpoint in UNOWNED_ENDPOINTS or rule.arguments or "GET" not in rule.methods:
            continue
        body = client.get(rule.rule, headers=headers).get_data(as_text=True)
        assert not [name for name in victim_objects["names"] if name in body], rule.rule
        assert "victim secret log line" not in body and "victim token" not in body, rule.rule


def test_the_apis_lists_hold_none_of_another_users_objects(client, victim_objects, intruder):
    _, headers = intruder
    assert client.get("/api/v1/datasets", headers=headers).get_json()["data"] == []
    jobs = client.get("/api/v1/jobs", headers=headers).get_json()
    assert (jobs["data"], jobs["meta"]["total"]) == ([], 0)
