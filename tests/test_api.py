"""The JSON API: reading one's objects, pagination, the error format and the OpenAPI document (other users'
objects: tests/security/test_ownership.py)."""
from __future__ import annotations

import json
import re

import pytest

from app.api.openapi import OPENAPI_PATH
from app.db import database
from tests.support.factories import make_artifact, make_dataset, make_event, make_job


@pytest.fixture
def owner(make_user):
    """The user whose objects the tests read."""
    return make_user()


@pytest.fixture
def owner_headers(owner, make_token):
    """Bearer headers of owner."""
    return {"Authorization": f"Bearer {make_token(owner)}"}


@pytest.fixture
def owned(app, owner):
    """A dataset, a job with two events and an artifact, all of owner."""
    with app.app_context(), database.connection_context():
        dataset = make_dataset(owner)
        job = make_job(owner, dataset)
        first, second = make_event(job, message="one"), make_event(job, kind="metric", message="", data={"loss": 1.5})
        make_artifact(job)
        return {"dataset": dataset.id, "job": job.id, "events": [first.id, second.id]}


def owned_urls(owned) -> list[str]:
    """Every API URL that reads one of owner's objects."""
    job = owned["job"]
    return [f"/api/v1/datasets/{owned['dataset']}", f"/api/v1/jobs/{job}", f"/api/v1/jobs/{job}/events",
            f"/api/v1/jobs/{job}/artifacts"]


def test_owner_reads_each_of_their_objects(client, owned, owner_headers):
    for url in owned_urls(owned):
        assert client.get(url, headers=owner_headers).status_code == 200, url


def test_lists_show_the_users_objects(client, owned, owner_headers):
    mine = client.get("/api/v1/datasets", headers=owner_headers).get_json()["data"]
    assert [d["id"] for d in mine] == [owned["dataset"]]
    assert client.get("/api/v1/jobs", headers=owner_headers).get_json()["meta"]["total"] == 1


def test_events_come_in_order_and_resume_after_an_id(client, owned, owner_headers):
    url = f"/api/v1/jobs/{owned['job']}/events"
    everything = client.get(url, headers=owner_headers).get_json()
    assert [e["id"] for e in everything["data"]] == owned["events"]
    assert everything["meta"]["last_id"] == owned["events"][-1]
    rest = client.get(f"{url}?after={owned['events'][0]}", headers=owner_headers).get_json()
    assert [e["data"] for e in rest["data"]] == [{"loss": 1.5}]


def test_lists_are_paginated_newest_first(app, client, owner, owner_headers):
    with app.app_context(), database.connection_context():
        ids = [make_dataset(owner).id for _ in range(5)]
    page = client.get("/api/v1/datasets?page=2&per_page=2", headers=owner_headers).get_json()
    assert [d["id"] for d in page["data"]] == list(reversed(ids))[2:4]
    assert page["meta"] == {"page": 2, "per_page": 2, "total": 5, "pages": 3, "total_exact": True,
                            "next_cursor": str(ids[1])}
    older = client.get(f"/api/v1/datasets?per_page=2&cursor={ids[1]}", headers=owner_headers).get_json()
    assert [d["id"] for d in older["data"]] == [ids[0]] and older["meta"]["next_cursor"] is None


@pytest.mark.parametrize("query, field", [("page=0", "page"), ("per_page=101", "per_page"), ("page=abc", "page")])
def test_bad_pagination_is_422_naming_the_parameter(client, owner_headers, query, field):
    response = client.get(f"/api/v1/jobs?{query}", headers=owner_headers)
    assert response.status_code == 422
    assert response.get_json()["error"]["details"]["field"] == field


def test_job_list_filters_by_status_and_rejects_unknown_ones(app, client, owner, owner_headers):
    with app.app_context(), database.connection_context():
        make_job(owner, status="running")
        make_job(owner)
    running = client.get("/api/v1/jobs?status=running", headers=owner_headers).get_json()
    assert [j["status"] for j in running["data"]] == ["running"]
    assert client.get("/api/v1/jobs?status=bogus", headers=owner_headers).status_code == 422


def test_unknown_api_route_is_json_404(client, owner_headers):
    response = client.get("/api/v1/no-such-thing", headers=owner_headers)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_wrong_method_is_json_405_with_allow(client, owner_headers):
    response = client.delete("/api/v1/jobs", headers=owner_headers)
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


def test_unknown_page_is_an_html_404(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"


def test_openapi_document_is_public_and_describes_every_api_route(app, client):
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in document["paths"].items() for method in ops}
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule.removeprefix("/api/v1"))
            served |= {(path, method) for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == served


def test_openapi_document_is_valid_json_with_resolvable_references():
    document = json.loads(OPENAPI_PATH.read_text())
    for reference in re.findall(r'"\$ref": "#/([^"]+)"', OPENAPI_PATH.read_text()):
        node = document
        for part in reference.split("/"):
            node = node[part]
