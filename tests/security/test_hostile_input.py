"""Input no honest client sends is refused with a 4xx, never a 5xx."""
from __future__ import annotations

import pytest
from flask import request

from app.extensions import csrf
from tests.support.accounts import csrf_token_from


def test_nul_in_a_query_parameter_is_a_422_naming_it(client, user, make_token):
    response = client.get("/api/v1/datasets?q=a%00b", headers={"Authorization": f"Bearer {make_token(user)}"})
    assert response.status_code == 422
    assert response.get_json()["error"]["details"] == {"field": "q"}


def test_nul_in_a_form_field_is_refused_before_any_query(client):
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": "a\x00@example.com", "password": "x" * 12, "csrf_token": token})
    assert response.status_code == 422


def test_pages_far_beyond_the_end_are_a_422_not_a_database_overflow(client, user, make_token):
    headers = {"Authorization": f"Bearer {make_token(user)}"}
    assert client.get("/api/v1/jobs?page=1000000", headers=headers).status_code == 200
    response = client.get("/api/v1/jobs?page=10811846898191328870400", headers=headers)
    assert response.status_code == 422 and response.get_json()["error"]["details"]["field"] == "page"
    assert client.get("/api/v1/jobs?per_page=%C2%B2", headers=headers).status_code == 422  # "²" is a digit to Python


@pytest.mark.parametrize("body, field", [
    ('{"dataset_id": Infinity, "base_model": "tiny-random-llama"}', "dataset_id"),
    ('{"dataset_id": 1, "hyperparameters": {"learning_rate": NaN}}', "hyperparameters.learning_rate"),
    ('{"dataset_id": 1, "hyperparameters": {"epochs": -Infinity}}', "hyperparameters.epochs"),
    ('{"dataset_id": 1e999}', "dataset_id"),
    ('{"name": "x", "tags": [1, 2, NaN]}', "tags[2]"),
])
def test_non_finite_numbers_in_a_json_body_are_a_422_naming_the_field(client, user, make_token, body, field):
    headers = {"Authorization": f"Bearer {make_token(user)}", "Content-Type": "application/json"}
    response = client.post("/api/v1/jobs", data=body, headers=headers)
    assert response.status_code == 422
    assert response.get_json()["error"]["details"] == {"field": field}


def test_any_route_that_reads_a_json_body_refuses_non_finite_numbers(app, client):
    reached = []

    @app.post("/api/echo-json")
    @csrf.exempt
    def echo_json():
        body = request.get_json(silent=True)
        reached.append(body)
        return {"got": repr(body)}

    response = client.post("/api/echo-json", data='[{"deep": {"er": [NaN]}}]', content_type="application/json")
    assert response.status_code == 422 and not reached
    assert response.get_json()["error"]["details"] == {"field": "[0].deep.er[0]"}
