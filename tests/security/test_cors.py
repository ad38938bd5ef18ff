"""CORS on the API for ALLOWED_ORIGINS only: preflights and simple requests, allowed and refused."""
from __future__ import annotations

import pytest

ALLOWED = "https://studio.example.com"


@pytest.fixture
def cors_client(make_app):
    """A client of an app that lets one other origin call its API."""
    return make_app(allowed_origins=f"{ALLOWED}, http://localhost:3000").test_client()


def preflight(client, origin: str, path: str = "/api/v1/jobs"):
    """The browser's OPTIONS request before a cross-origin call with a bearer token."""
    return client.options(path, headers={"Origin": origin, "Access-Control-Request-Method": "GET",
                                         "Access-Control-Request-Headers": "authorization"})


def test_preflight_from_an_allowed_origin_is_answered_without_credentials(cors_client):
    response = preflight(cors_client, ALLOWED)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "GET" in response.headers["Access-Control-Allow-Methods"]
    assert response.headers["Access-Control-Allow-Headers"].lower() == "authorization"
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert "Origin" in ", ".join(response.headers.getlist("Vary"))  # caches must not mix answers per origin


def test_simple_request_from_an_allowed_origin_may_read_the_answer(cors_client, user, make_token):
    response = cors_client.get("/api/v1/jobs", headers={"Origin": ALLOWED,
                                                        "Authorization": f"Bearer {make_token(user)}"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "Retry-After" in response.headers["Access-Control-Expose-Headers"]


@pytest.mark.parametrize("origin", ["https://evil.example.net", "https://studio.example.com.evil.net",
                                    "http://studio.example.com", "https://studioXexample.com", "null"])
def test_other_origins_get_no_cors_headers(cors_client, origin):
    for response in (preflight(cors_client, origin), cors_client.get("/api/v1/jobs", headers={"Origin": origin})):
        assert not [name for name, _ in response.headers if name.startswith("Access-Control-")], origin


def test_pages_never_answer_cross_origin_requests(cors_client):
    response = cors_client.get("/login", headers={"Origin": ALLOWED})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_without_allowed_origins_no_origin_is_allowed(client):
    assert "Access-Control-Allow-Origin" not in preflight(client, ALLOWED).headers
