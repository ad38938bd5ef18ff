"""Runs longer than a Kaggle session: the program stops at its time budget with a checkpoint as output, and the job
goes on in a new kernel version that attaches that output, as one run with one history, to the same result."""
from __future__ import annotations

import pytest

from app.db import database
from app.models import Job, JobEvent
from tests.support.accounts import login
from tests.support.jobs import status_events, wait_for_status
from tests.support.kaggle import KAGGLE_USER, with_kaggle
from tests.support.workers import worker_pool

# Three optimizer steps and a budget of one second: the program needs longer than that to start, and it always
# makes one step per start, so each session trains exactly one step and the run needs three sessions.
TINY = {"max_steps": 3, "batch_size": 2, "gradient_accumulation_steps": 1, "max_seq_length": 64,
        "logging_steps": 1, "save_steps": 100, "eval_steps": 100, "lora_r": 4, "lora_alpha": 8}
# The same run on a CPU in two places: the same arithmetic, summed in a different thread layout at most.
LOSS_TOLERANCE = 1e-4


@pytest.fixture
def settings(s3_settings, tmp_path):
    """Alice's account, sessions of two minutes of which the program may train one second."""
    return with_kaggle(s3_settings, tmp_path, kaggle_session_seconds=120, kaggle_session_margin_seconds=119)


def create(client, headers, dataset_id, backend: str) -> dict:
    """POST a job of the tiny model."""
    response = client.post("/api/v1/jobs", headers=headers, json={
        "dataset_id": dataset_id, "base_model": "tiny-random-llama", "backend": backend, "hyperparameters": TINY})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


@pytest.mark.timeout(600)
def test_a_run_needing_three_sessions_succeeds_as_one_run_with_the_uninterrupted_loss(
        app, client, user, headers, dataset_id, settings, kaggle_emulator, tmp_path):
    kaggle_emulator.limit_sessions(120)  # Kaggle ends a session at its limit, whatever the program does
    remote, uninterrupted = create(client, headers, dataset_id, "kaggle"), create(client, headers, dataset_id, "local")
    env = {**kaggle_emulator.client_env(), "KAGGLE_CONFIG_DIR": str(tmp_path / "kaggle-config")}
    with worker_pool(settings, tmp_path / "worker.log", pool_size=2, extra_env=env):
        finals = [wait_for_status(client, headers, job["id"], {"succeeded", "failed"}, timeout=500)
                  for job in (remote, uninterrupted)]
    assert [final["status"] for final in finals] == ["succeeded"] * 2, (tmp_path / "worker.log").read_text()[-3000:]
    with app.app_context(), database.connection_context():
        slug = Job.get_by_id(remote["id"]).backend_ref["kernel"].split("/")[1]
        events = list(JobEvent.select().where(JobEvent.job == remote["id"]).order_by(JobEvent.id))
    assert kaggle_emulator.pushes(slug) == 3 and kaggle_emulator.kernel(slug)["versions"] == 3
    assert kaggle_emulator.kernel(slug)["metadata"]["kernel_sources"] == [f"{KAGGLE_USER}/{slug}/2"]
    assert [e.data["step"] for e in events if e.kind == "metric"] == [1, 2, 3]  # one history, nothing twice
    assert status_events(app, remote["id"]) == ["queued", "preparing", "running", "succeeded"]
    assert [e.data["session"] for e in events if "reached its time limit" in e.message] == [1, 2]
    assert abs(finals[0]["metrics"]["loss"] - finals[1]["metrics"]["loss"]) < LOSS_TOLERANCE
    assert finals[0]["session"] == 3
    login(client, user.email)
    assert "Kaggle session 3" in client.get(f"/jobs/{remote['id']}").get_data(as_text=True)
