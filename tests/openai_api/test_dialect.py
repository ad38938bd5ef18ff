"""The /v1 dialect's rules, in process: the learning-rate mapping, OpenAI's error shape, its document."""
from __future__ import annotations

import re

import pytest

from app.db import database
from app.models import Checkpoint
from app.openai_api.translation import base_learning_rate, translate
from tests.support.database import counted_queries
from tests.support.factories import make_dataset, make_job


def test_learning_rate_multiplier_scales_the_base_rate_of_the_models_size():
    assert base_learning_rate("qwen2.5-0.5b-instruct", "lora") == 2e-4
    assert base_learning_rate("qwen2.5-3b-instruct", "lora") == 1e-4
    assert base_learning_rate("someone/unknown-model", "lora") == 5e-5
    assert base_learning_rate("qwen2.5-0.5b-instruct", "full") == pytest.approx(2e-5)
    job = translate({"model": "qwen2.5-3b-instruct", "training_file": "file-3", "seed": 5, "method": {
        "type": "supervised", "supervised": {"hyperparameters": {"learning_rate_multiplier": 0.5, "n_epochs": 2,
                                                                 "batch_size": "auto"}}}})
    assert job.request.hyperparameters == {"seed": 5, "learning_rate": 5e-5, "logging_steps": 1, "epochs": 2}
    assert (job.request.dataset_id, job.request.method) == (3, "lora")
    deprecated = translate({"model": "qwen2.5-3b-instruct", "training_file": "file-3",
                            "hyperparameters": {"learning_rate_multiplier": "auto"}})
    assert deprecated.request.hyperparameters["learning_rate"] == 1e-4


@pytest.mark.parametrize(("payload", "param"), [
    ({"model": "m", "training_file": "file-1", "temperature": 1}, "temperature"),
    ({"model": "m"}, "training_file"),
    ({"model": "m", "training_file": "file-1", "suffix": "no spaces allowed"}, "suffix"),
    ({"model": "m", "training_file": "file-1", "metadata": {"k": 1}}, "metadata"),
    ({"model": "m", "training_file": "file-1", "hyperparameters": {"beta": 0.1}}, "hyperparameters.beta"),
    ({"model": "m", "training_file": "file-1", "hyperparameters": {"batch_size": 1.5}}, "hyperparameters.batch_size"),
])
def test_bad_job_requests_are_400_in_openais_shape_naming_the_param(client, user, make_token, payload, param):
    response = client.post("/v1/fine_tuning/jobs", json=payload,
                           headers={"Authorization": f"Bearer {make_token(user)}"})
    error = response.get_json()["error"]
    assert response.status_code == 400 and error["param"] == param and error["type"] == "invalid_request_error"
    assert set(error) == {"message", "type", "param", "code"}


def test_unknown_v1_routes_and_missing_tokens_answer_in_openais_shape(client, user, make_token):
    missing = client.get("/v1/no-such-thing", headers={"Authorization": f"Bearer {make_token(user)}"})
    assert missing.status_code == 404 and missing.get_json()["error"]["type"] == "invalid_request_error"
    anonymous = client.get("/v1/models")
    assert anonymous.status_code == 401 and anonymous.get_json()["error"]["type"] == "authentication_error"


def test_the_dialects_document_describes_every_v1_route(app, client):
    document = client.get("/v1/openapi.json").get_json()
    documented = {(path, method.upper()) for path, ops in document["paths"].items() for method in ops}
    served = {(re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule.removeprefix("/v1")), method)
              for rule in app.url_map.iter_rules() if rule.rule.startswith("/v1/")
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == served


def test_a_page_of_jobs_costs_the_same_queries_however_many_succeeded(app, client, user, make_token):
    headers = {"Authorization": f"Bearer {make_token(user)}"}
    with app.app_context(), database.connection_context():
        dataset = make_dataset(user, stats={"tokens": {"total": 500}})
        for _ in range(6):
            make_job(user, dataset, status="succeeded")
    client.get("/v1/models", headers=headers)  # the token's first use is recorded once, outside the count
    counts = []
    for limit in (2, 6):
        with counted_queries() as queries:
            response = client.get(f"/v1/fine_tuning/jobs?limit={limit}", headers=headers)
        assert len(response.get_json()["data"]) == limit and response.get_json()["data"][0]["trained_tokens"]
        counts.append(len(queries))
    assert counts[0] == counts[1] == 2  # the token's user, then the page of jobs with their datasets


def test_checkpoints_are_the_kept_ones_and_the_final_model_newest_first(app, client, user, make_token):
    headers = {"Authorization": f"Bearer {make_token(user)}"}
    with app.app_context(), database.connection_context():
        job = make_job(user, status="succeeded", step=30, metrics={"loss": 0.5})
        for step, loss in ((10, 1.5), (20, 0.9)):
            Checkpoint.create(job=job.id, step=step, metrics={"loss": loss, "eval_loss": loss + 0.1},
                              artifact=f"checkpoints/checkpoint-{step}")
    page = client.get(f"/v1/fine_tuning/jobs/ftjob-{job.id}/checkpoints", headers=headers).get_json()
    assert [(c["step_number"], c["metrics"]["train_loss"]) for c in page["data"]] == [(30, 0.5), (20, 0.9), (10, 1.5)]
    assert page["data"][1]["metrics"]["valid_loss"] == 1.0 and page["has_more"] is False
    after = client.get(f"/v1/fine_tuning/jobs/ftjob-{job.id}/checkpoints?after={page['data'][0]['id']}&limit=1",
                       headers=headers).get_json()
    assert [c["step_number"] for c in after["data"]] == [20] and after["has_more"] is True
