"""Every job ends, stage changes are compare-and-set, polls are exactly-once, names cannot collide (issue 13,
items 1, 3, 5 and 6): the orchestration driven step by step in this process, on PostgreSQL and Redis."""
from __future__ import annotations

import peewee
import pytest
from rq.job import Job as RQJob
from rq.timeouts import JobTimeoutException

from app.db import database
from app.jobs import backends, orchestrator, progress, reconciler, states
from app.jobs.artifacts import store_artifacts
from app.jobs.backends import PollResult
from app.jobs.backends.kaggle import kernels
from app.jobs.backends.kaggle.backend import KaggleBackend
from app.jobs.context import JobContext
from app.jobs.scheduling import schedule
from app.models import Artifact, Installation, Job, JobEvent
from tests.support.factories import make_job
from tests.support.kaggle import training_inputs


class ScriptedBackend(KaggleBackend):
    """A remote backend whose polls answer what the test scripted (SCRIPT), in order; the rest is Kaggle's."""

    name = "scripted"
    SCRIPT: list[PollResult] = []

    def poll(self, ref: dict) -> PollResult:
        """The next scripted answer."""
        return self.SCRIPT.pop(0)


@pytest.fixture
def ctx(app, settings, monkeypatch):
    """The job domain's context, with the scripted backend registered, inside the app with a connection."""
    backends.names()  # the plug-in scan first, so that it does not run again after the test
    monkeypatch.setitem(backends._REGISTRY, ScriptedBackend.name, ScriptedBackend)
    with app.app_context(), database.connection_context():
        yield JobContext(settings.model_copy(update={"training_backends": "local,scripted"}),
                         app.extensions["store"], app.extensions["redis"])


@pytest.fixture
def job(ctx, user):
    """A job of the user, in the stage its first step is scheduled at."""
    job = make_job(user)
    schedule(ctx, job, states.PREPARE)
    return Job.get_by_id(job.id)


def run_current_step(ctx, job_id: int) -> str:
    """Run the job's current step as RQ would: with the RQ job id the row names."""
    row = Job.get_by_id(job_id)
    return orchestrator.run_step(ctx, row.id, row.stage, row.rq_job_id)


# --- 1. every job ends ----------------------------------------------------------------------------------------


def test_a_bug_in_a_step_fails_the_job_naming_the_stage(ctx, job, monkeypatch):
    def broken(ctx, job):
        raise KeyError("no such thing")

    monkeypatch.setitem(orchestrator.STEPS, states.PREPARE, broken)
    assert run_current_step(ctx, job.id) == "failed"
    failed = Job.get_by_id(job.id)
    assert failed.status == states.FAILED
    assert failed.error == "The prepare step failed: KeyError: 'no such thing'"


def test_a_database_error_is_retried_a_bounded_number_of_times_then_fails_the_job(ctx, job, monkeypatch):
    def flaky(ctx, job):
        raise peewee.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setitem(orchestrator.STEPS, states.PREPARE, flaky)
    outcomes = [run_current_step(ctx, job.id) for _ in range(orchestrator.MAX_ATTEMPTS)]
    assert outcomes == ["retrying"] * (orchestrator.MAX_ATTEMPTS - 1) + ["failed"]
    failed = Job.get_by_id(job.id)
    assert failed.status == states.FAILED and failed.stage == states.DONE
    assert failed.error == (f"The prepare step failed {orchestrator.MAX_ATTEMPTS} times in a row; the last error: "
                            "server closed the connection unexpectedly")


def test_a_step_that_keeps_killing_its_worker_ends_the_job_after_bounded_recoveries(ctx, job, monkeypatch):
    def dies(ctx, job):
        raise AssertionError("a killed worker never gets here")

    monkeypatch.setitem(orchestrator.STEPS, states.PREPARE, dies)
    for _ in range(orchestrator.MAX_ATTEMPTS):
        row = Job.get_by_id(job.id)
        assert orchestrator._count_attempt(row)  # the step starts... and its worker dies: nothing else happens
        RQJob.fetch(row.rq_job_id, connection=ctx.redis).delete()
        assert reconciler.reconcile(ctx)["jobs"] == 1
    assert run_current_step(ctx, job.id) == "failed"
    failed = Job.get_by_id(job.id)
    assert failed.status == states.FAILED
    assert failed.error.startswith(f"The prepare step failed {orchestrator.MAX_ATTEMPTS} times in a row")
    assert "the worker carrying the prepare step stopped" in failed.error


def test_a_step_past_rqs_timeout_fails_the_job_instead_of_running_again(ctx, job, monkeypatch):
    def slow(ctx, job):
        raise JobTimeoutException("Task exceeded maximum timeout value (900 seconds)")

    monkeypatch.setitem(orchestrator.STEPS, states.PREPARE, slow)
    assert run_current_step(ctx, job.id) == "timed out"
    failed = Job.get_by_id(job.id)
    assert failed.status == states.FAILED and "The prepare step took longer than its limit" in failed.error


def test_a_step_that_succeeds_starts_the_count_again(ctx, job, monkeypatch):
    calls = []

    def once_flaky(ctx, job):
        calls.append(1)
        if len(calls) == 1:
            raise peewee.OperationalError("blip")
        schedule(ctx, job, states.SUBMIT)
        return "prepared"

    monkeypatch.setitem(orchestrator.STEPS, states.PREPARE, once_flaky)
    assert [run_current_step(ctx, job.id) for _ in range(2)] == ["retrying", "prepared"]
    moved = Job.get_by_id(job.id)
    assert moved.stage == states.SUBMIT and moved.stage_attempts == 0 and moved.last_error == "blip"


# --- 3. stage changes are compare-and-set ---------------------------------------------------------------------


def test_a_stage_change_from_a_stale_read_does_nothing(ctx, job):
    seen_by_reconciler = Job.get_by_id(job.id)  # read at prepare...
    assert schedule(ctx, Job.get_by_id(job.id), states.SUBMIT)  # ...the step moved on meanwhile
    assert schedule(ctx, seen_by_reconciler, states.PREPARE, retry=True) is None
    assert Job.get_by_id(job.id).stage == states.SUBMIT


def test_of_two_moves_from_the_same_stage_only_one_wins(ctx, job):
    first, second = Job.get_by_id(job.id), Job.get_by_id(job.id)
    assert schedule(ctx, first, states.SUBMIT) is not None
    assert schedule(ctx, second, states.CANCEL) is None
    assert Job.get_by_id(job.id).stage == states.SUBMIT


def test_a_stale_step_runs_nothing(ctx, job, monkeypatch):
    ran = []
    monkeypatch.setitem(orchestrator.STEPS, states.PREPARE, lambda ctx, job: ran.append(job.id))
    stale_rq_id = Job.get_by_id(job.id).rq_job_id
    schedule(ctx, Job.get_by_id(job.id), states.PREPARE, retry=True)
    assert orchestrator.run_step(ctx, job.id, states.PREPARE, stale_rq_id) == "stale" and not ran


# --- 5. polls are exactly-once --------------------------------------------------------------------------------


def scripted_job(ctx, user, **ref) -> Job:
    """A running job of the scripted backend, at its poll stage."""
    job = make_job(user, backend="scripted", status=states.RUNNING, stage=states.SUBMIT, remote_open=True,
                   backend_ref={"kernel": "alice/k", **ref})
    schedule(ctx, job, states.POLL)
    return Job.get_by_id(job.id)


def test_the_log_line_cap_counts_across_polls(ctx, user):
    ctx.settings = ctx.settings.model_copy(update={"job_log_event_cap": 5})
    ScriptedBackend.SCRIPT = [PollResult("running", [f"line {n}" for n in range(4)]) for _ in range(3)]
    job = scripted_job(ctx, user)
    for _ in range(3):
        assert run_current_step(ctx, job.id) == "running"
    assert JobEvent.select().where((JobEvent.job == job.id) & (JobEvent.kind == "log")).count() == 5


def test_a_poll_superseded_by_a_newer_one_records_nothing(ctx, user):
    ScriptedBackend.SCRIPT = [PollResult("running", ['@@studio {"type": "progress", "step": 1, "loss": 2.0}'],
                                         ref={"log_events": 1})]
    job = scripted_job(ctx, user)
    old = Job.get_by_id(job.id)
    schedule(ctx, Job.get_by_id(job.id), states.POLL, retry=True)  # the reconciler re-enqueued the poll meanwhile
    old.stage_attempts = 0
    assert orchestrator._attempt(ctx, old, states.POLL) == "stale"
    assert JobEvent.select().where(JobEvent.job == job.id).count() == 0
    assert "log_events" not in Job.get_by_id(job.id).backend_ref


def test_an_unknown_session_status_fails_the_job_after_a_bounded_wait(ctx, user):
    ScriptedBackend.SCRIPT = [PollResult("unknown", message="HIBERNATING") for _ in range(2)]
    job = scripted_job(ctx, user)
    assert run_current_step(ctx, job.id) == "unknown"
    assert Job.get_by_id(job.id).status == states.RUNNING
    ref = Job.get_by_id(job.id).backend_ref
    Job.update(backend_ref={**ref, "unknown_since": "2000-01-01T00:00:00"}).where(Job.id == job.id).execute()
    assert run_current_step(ctx, job.id) == states.FAILED
    assert "HIBERNATING" in Job.get_by_id(job.id).error


def test_a_resumed_run_reporting_steps_again_records_each_step_once(ctx, user):
    job = make_job(user, status=states.RUNNING)
    lines = [f'@@studio {{"type": "progress", "step": {step}, "loss": 1.0}}' for step in (1, 2, 3)]
    progress.apply_output(job, lines)
    progress.apply_output(Job.get_by_id(job.id), [*lines[1:], '@@studio {"type": "progress", "step": 4, "loss": 0.5}'])
    steps = [event.data["step"] for event in JobEvent.select().where(JobEvent.job == job.id).order_by(JobEvent.id)]
    assert steps == [1, 2, 3, 4]


def test_a_recollected_artifact_gets_its_new_sha256(ctx, user, tmp_path):
    job, outputs = make_job(user), tmp_path / "outputs"
    outputs.mkdir()
    (outputs / "metrics.json").write_text('{"loss": 1}')
    store_artifacts(ctx.store, job, outputs)
    first = Artifact.get(Artifact.job == job.id).sha256
    (outputs / "metrics.json").write_text('{"loss": 0.5}')
    store_artifacts(ctx.store, job, outputs)
    assert Artifact.get(Artifact.job == job.id).sha256 != first
    assert Artifact.select().where(Artifact.job == job.id).count() == 1


# --- 6. names that cannot collide -----------------------------------------------------------------------------


def test_kaggle_names_carry_the_installation_id(ctx, tmp_path):
    here = Installation.current_id()
    assert here == Installation.current_id() and len(here) == 8
    ours = training_inputs(tmp_path / "a", installation_id=here)
    theirs = training_inputs(tmp_path / "b", installation_id="0f0f0f0f")
    assert kernels.dataset_slug(here, 7) != kernels.dataset_slug("0f0f0f0f", 7)
    assert here in kernels.dataset_slug(here, 7) and len(kernels.dataset_slug(here, 2**31)) <= 50
    assert kernels.kernel_title(ours) != kernels.kernel_title(theirs)
