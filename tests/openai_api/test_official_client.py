"""The /v1 dialect driven by the official `openai` client, 2.x and 3.x, against gunicorn with a real worker."""
from __future__ import annotations

import uuid

import pytest
from openai import OpenAI

from app.db import database
from app.models import Job
from tests.support.openai_clients import CLIENTS, run_client_script
from tests.support.waiting import wait_until
from tests.support.web import gunicorn
from tests.support.webhooks import webhook_receiver
from tests.support.workers import worker_pool


@pytest.fixture
def settings(s3_settings):
    """S3 storage, the local backend, no rate limits (the client polls as fast as it likes), loopback webhooks."""
    return s3_settings.model_copy(update={"rate_limits_enabled": False, "worker_pool_size": 1,
                                         "quota_max_active_jobs": 50, "webhooks_allow_private_addresses": True})


@pytest.fixture
def api(app, settings, user, make_token, tmp_path):
    """A gunicorn on the settings and a token of the user's: what the client's base_url and api_key point at."""
    with gunicorn(settings, tmp_path / "gunicorn.log", workers=1) as server:
        yield server.url, make_token(user)


@pytest.fixture(params=sorted(CLIENTS))
def version(request) -> str:
    """Each client version in turn."""
    return request.param


def test_client_trains_a_job_to_its_model_with_events_checkpoints_and_webhooks(app, api, version, settings,
                                                                                client, tmp_path):
    url, token = api
    with webhook_receiver() as receiver, worker_pool(settings, tmp_path / "worker.log"):
        secret = client.post("/api/v1/webhooks", headers={"Authorization": f"Bearer {token}"}, json={
            "url": receiver.url, "events": ["job.running", "fine_tuning.job.succeeded"]}).get_json()["secret"]
        seen = run_client_script(version, "train", url, token, uuid.uuid4().hex)
        wait_until(lambda: len(receiver.accepted()) == 2, 60, "both webhooks")
    assert seen["checkpoint_steps"] and seen["events"] > 3
    unwrap = OpenAI(api_key="unused", base_url=url).webhooks.unwrap
    events = [unwrap(r.body, r.headers, secret=secret) for r in receiver.received]
    assert [(e.type, e.data.id) for e in events] == [("job.running", seen["job"]),
                                                     ("fine_tuning.job.succeeded", seen["job"])]
    with app.app_context(), database.connection_context():
        job = Job.get_by_id(int(seen["job"].removeprefix("ftjob-")))
    # The same job the Studio's pages and /api/v1 show, with what only the dialect sent.
    assert (job.status, job.suffix, job.dataset_id) == ("succeeded", "walk", int(seen["file"].removeprefix("file-")))
    assert job.hyperparameters["epochs"] == 1 and job.hyperparameters["seed"] == 7
    assert job.step == seen["checkpoint_steps"][0]


def test_client_pages_filters_cancels_and_gets_typed_errors(app, api, version, client):
    url, token = api
    tag = uuid.uuid4().hex
    seen = run_client_script(version, "page_and_cancel", url, token, tag)
    headers = {"Authorization": f"Bearer {token}"}
    studio = client.get(f"/api/v1/jobs/{seen['cancelled'].removeprefix('ftjob-')}", headers=headers).get_json()
    assert studio["status"] == "cancelled"
    errors = seen["errors"]
    assert {name: e["status"] for name, e in errors.items() if e["status"] != 400} == {
        "missing job": 404, "malformed job id": 404, "missing file": 404, "bad key": 401}
    assert errors["unknown model"]["param"] == "model" and errors["unknown file"]["param"] == "training_file"
    assert errors["bad epochs"]["param"] == "hyperparameters.n_epochs"
    assert errors["wrong purpose"]["param"] == "purpose"
    assert "Only a running job can be paused" in errors["pause"]["message"]
    dpo = client.get(f"/api/v1/jobs/{seen['dpo']['job'].removeprefix('ftjob-')}", headers=headers).get_json()
    assert dpo["method"] == "dpo" and dpo["hyperparameters"]["beta"] == 0.2, dpo
    assert seen["dpo"]["refused_param"] == "training_file"
