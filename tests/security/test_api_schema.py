"""schemathesis against /api/v1/openapi.json, authenticated: no 5xx, and every answer matches the document."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings, strategies
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from app.api.openapi import OPENAPI_PATH
from app.db import database
from tests.support.factories import make_artifact, make_dataset, make_event, make_job

# Enough to walk each operation's parameters and error paths while the whole run stays within seconds.
EXAMPLES_PER_OPERATION = 30
# Operations whose acceptance depends on stored state (a job needs an existing, ready dataset of yours), so
# schema-valid input is rightly refused with 422 most of the time; so is a webhook URL that does not resolve
# to a public address.
STATEFUL_VALIDATION = {"POST /jobs", "POST /jobs/estimate", "POST /webhooks", "PATCH /webhooks/{endpoint_id}"}
# schemathesis leaves out the document it was loaded from, which takes no input anyway.
OPERATIONS = [result.ok().label for result in schemathesis.openapi.from_path(OPENAPI_PATH).get_all_operations()
              if result.ok().label != "GET /openapi.json"]


@pytest.fixture
def api_app(make_app, make_user, make_token):
    """An app whose limits stay out of the way, with a user owning a dataset and a job (ids 1), and an admin."""
    app = make_app(rate_limit_global="100000/minute", rate_limit_expensive="100000/minute")
    owner = make_user()
    with app.app_context(), database.connection_context():
        job = make_job(owner, make_dataset(owner))
        make_event(job)
        make_artifact(job)
    app.config["TEST_TOKEN"] = make_token(owner)
    app.config["ADMIN_TOKEN"] = make_token(make_user(is_admin=True))
    return app


@pytest.mark.parametrize("label", OPERATIONS)
def test_api_answers_match_the_openapi_document(api_app, label):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", api_app)
    # PostgreSQL cannot store NUL, so the Studio refuses it (422, tested apart) though JSON Schema allows it.
    schema.config.generation.update(allow_x00=False)
    operation = next(r.ok() for r in schema.get_all_operations() if r.ok().label == label)
    # The admin operations answer anyone else 403 (tested apart), so they are walked with an admin's token.
    token = api_app.config["ADMIN_TOKEN" if " /admin/" in label else "TEST_TOKEN"]
    headers = {"Authorization": f"Bearer {token}"}
    cases = strategies.one_of(operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                              operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))

    @given(case=cases)
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def answers_as_documented(case):
        # Invalid input must never cause a 5xx, but unknown parameters are ignored, not refused, by design.
        excluded = [negative_data_rejection] + ([positive_data_acceptance] if label in STATEFUL_VALIDATION else [])
        case.call_and_validate(headers=headers, excluded_checks=excluded)

    answers_as_documented()
