"""Cancel wins races (issue 13, item 4): a cancel that lands while a Kaggle submission gathers its inputs or pushes
its kernel leaves no session nobody follows, and a cancelled job's session holds its slot until Kaggle says it
ended. The steps run in this process, one at a time, against the Kaggle emulator."""
from __future__ import annotations

import pytest

from app.db import database
from app.jobs import inputs, orchestrator, service, states
from app.jobs.backends import TrainingInputs
from app.jobs.backends.kaggle.backend import KaggleBackend
from app.jobs.context import JobContext
from app.models import Job
from tests.support.kaggle import with_kaggle
from tests.support.waiting import wait_until

TINY = {"max_steps": 2, "batch_size": 2, "gradient_accumulation_steps": 1, "max_seq_length": 64,
        "logging_steps": 1, "save_steps": 100, "eval_steps": 100, "lora_r": 4, "lora_alpha": 8}


@pytest.fixture
def settings(s3_settings, tmp_path):
    """Both backends, alice's Kaggle account, one Kaggle session at a time."""
    return with_kaggle(s3_settings, tmp_path, kaggle_max_concurrent=1)


@pytest.fixture
def ctx(app, kaggle_client_env):
    """The job domain's context inside the app, this process's client sent to the emulator (each database use
    opens its own connection: the test client's requests close theirs)."""
    with app.app_context():
        yield JobContext.from_app(app)


def row(job_id: int) -> Job:
    """The job as the database has it now."""
    with database.connection_context():
        return Job.get_by_id(job_id)


def new_job(client, headers, dataset_id) -> int:
    """A queued Kaggle job on the tiny model (its first step is on Redis; no worker runs it)."""
    body = {"dataset_id": dataset_id, "base_model": "tiny-random-llama", "backend": "kaggle", "hyperparameters": TINY}
    response = client.post("/api/v1/jobs", headers=headers, json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def step(ctx, job_id: int) -> str:
    """Run the job's current step as a worker would (with its own connection, as StudioWorker gives it)."""
    with database.connection_context():
        current = Job.get_by_id(job_id)
        return orchestrator.run_step(ctx, current.id, current.stage, current.rq_job_id)


def cancel_after(function):
    """function, followed by a user's cancel request for the job it was given."""
    def wrapped(*args):
        result = function(*args)
        job_id = next(arg.id if isinstance(arg, Job) else arg.job_id for arg in args
                      if isinstance(arg, (Job, TrainingInputs)))
        service.request_cancel(Job.get_by_id(job_id))
        return result
    return wrapped


def test_a_cancel_while_submit_gathers_its_inputs_pushes_no_kernel(ctx, client, headers, dataset_id,
                                                                   kaggle_client_env, monkeypatch):
    job_id = new_job(client, headers, dataset_id)
    assert step(ctx, job_id) == "prepared"
    monkeypatch.setattr(inputs, "gather", cancel_after(inputs.gather))
    assert step(ctx, job_id) == "cancelled"
    job = row(job_id)
    assert (job.status, job.remote_open) == (states.CANCELLED, False)
    assert kaggle_client_env.kernels() == []


def test_a_cancel_during_the_push_follows_the_session_which_holds_its_slot_until_it_ends(
        ctx, client, headers, dataset_id, kaggle_client_env, monkeypatch):
    kaggle_client_env.hold_queue()
    first, second = new_job(client, headers, dataset_id), new_job(client, headers, dataset_id)
    assert step(ctx, first) == "prepared"
    with monkeypatch.context() as patch:
        patch.setattr(KaggleBackend, "submit", cancel_after(KaggleBackend.submit))
        assert step(ctx, first) == "cancelled"
    cancelled = row(first)
    assert (cancelled.status, cancelled.remote_open, cancelled.stage) == (states.CANCELLED, True, states.RELEASE)
    assert len(kaggle_client_env.kernels()) == 1
    assert step(ctx, second) == "waiting for a slot", "the cancelled job's session still holds the only slot"
    assert row(second).status == states.QUEUED  # not admitted: it waits queued, saying why
    assert step(ctx, first) == "the remote session is still queued"
    kaggle_client_env.release()
    wait_until(lambda: step(ctx, first) == "released", 120, "the cancelled job's session to end")
    assert row(first).remote_open is False
    assert step(ctx, second) == "prepared"
    assert step(ctx, second) == "submitted"
