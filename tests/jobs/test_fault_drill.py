"""The fault drill (issue 13): at every stage boundary of both backends the worker pool is killed with SIGKILL
(app/faults.py, armed by STUDIO_FAULTS), then started again. Each job must end exactly once, succeeded, with one
kernel push (Kaggle) or one completed run (local), no event recorded twice, and nothing left in its run folder or
in storage beyond its artifacts."""
from __future__ import annotations

import pytest

from app.db import database
from app.faults import ENVIRONMENT, FIRED_DIR
from app.models import Artifact, Job, JobEvent
from tests.support.jobs import job_state, status_events, wait_for_status
from tests.support.kaggle import with_kaggle
from tests.support.waiting import wait_until
from tests.support.workers import worker_pool

TINY = {"max_steps": 6, "batch_size": 2, "gradient_accumulation_steps": 1, "max_seq_length": 64,
        "logging_steps": 1, "save_steps": 2, "eval_steps": 100, "lora_r": 4, "lora_alpha": 8}
POINTS = [("local", point) for point in ("run.training", "run.ended", "collect.stored", "finalize.cleaned")] + [
    ("kaggle", point) for point in ("prepare.uploaded", "submit.pushed", "poll.recorded", "collect.stored",
                                    "finalize.cleaned")]


@pytest.fixture
def settings(settings, tmp_path):
    """Local storage (the drill reads it), both backends, short leases and reconciler passes."""
    return with_kaggle(settings, tmp_path)


@pytest.mark.parametrize("backend, point", POINTS, ids=[f"{backend}-{point}" for backend, point in POINTS])
def test_a_pool_killed_at_a_stage_boundary_loses_nothing_and_runs_nothing_twice(
        app, client, headers, dataset_id, settings, kaggle_emulator, tmp_path, backend, point):
    body = {"dataset_id": dataset_id, "base_model": "tiny-random-llama", "backend": backend, "hyperparameters": TINY}
    job_id = client.post("/api/v1/jobs", headers=headers, json=body).get_json()["id"]
    fired = tmp_path / "fired"
    fired.mkdir()
    env = {**kaggle_emulator.client_env(), "KAGGLE_CONFIG_DIR": str(tmp_path / "kaggle-config"),
           ENVIRONMENT: point, FIRED_DIR: str(fired)}
    with worker_pool(settings, tmp_path / "killed.log", pool_size=2, extra_env=env) as pool:
        wait_until(lambda: pool.poll() is not None, 240, f"the fault at {point} to kill the pool")
    assert (fired / f"{point}.fired").exists(), (tmp_path / "killed.log").read_text()[-3000:]
    with worker_pool(settings, tmp_path / "restarted.log", pool_size=2, extra_env=env):
        final = wait_for_status(client, headers, job_id, {"succeeded", "failed", "cancelled"}, timeout=300)
    assert final["status"] == "succeeded", (tmp_path / "restarted.log").read_text()[-4000:]
    assert status_events(app, job_id) == ["queued", "preparing", "running", "succeeded"]
    assert_ran_once(app, job_id, backend, kaggle_emulator)
    assert_nothing_left(settings, job_id)


def assert_ran_once(app, job_id: int, backend: str, emulator) -> None:
    """One kernel push, or one program run to its end; every metric point recorded once."""
    with app.app_context(), database.connection_context():
        events = list(JobEvent.select().where(JobEvent.job == job_id).order_by(JobEvent.id))
        ref = Job.get_by_id(job_id).backend_ref or {}
    points = [(e.data["type"], e.data["step"]) for e in events if e.kind == "metric"]
    assert points == sorted(set(points), key=points.index) and len(points) == TINY["max_steps"], points
    if backend == "kaggle":
        assert emulator.pushes(ref["kernel"].split("/")[-1]) == 1
    done = [e for e in events if (e.data or {}).get("type") == "done"]
    assert len(done) == 1, [e.message for e in events if e.kind != "metric"]


def assert_nothing_left(settings, job_id: int) -> None:
    """No run folder, and in storage exactly the job's artifacts."""
    assert not (settings.data_dir / "runs" / str(job_id)).exists()
    root = settings.resolved_storage_dir
    stored = {path.relative_to(root).as_posix() for path in (root / "jobs" / str(job_id)).rglob("*") if path.is_file()}
    with database.connection_context():
        recorded = {artifact.object_key for artifact in Artifact.select().where(Artifact.job == job_id)}
    assert stored == recorded and recorded


@pytest.mark.parametrize("backend", ["local", "kaggle"])
def test_redis_flushed_mid_job_loses_nothing_and_runs_nothing_twice(
        app, client, headers, dataset_id, settings, kaggle_emulator, redis, tmp_path, backend):
    body = {"dataset_id": dataset_id, "base_model": "tiny-random-llama", "backend": backend,
            "hyperparameters": {**TINY, "max_steps": 30}}
    job_id = client.post("/api/v1/jobs", headers=headers, json=body).get_json()["id"]
    env = {**kaggle_emulator.client_env(), "KAGGLE_CONFIG_DIR": str(tmp_path / "kaggle-config")}
    with worker_pool(settings, tmp_path / "worker.log", pool_size=2, extra_env=env):
        wait_until(lambda: job_state(client, headers, job_id)["progress"]["step"] >= 2, 240, "training to run")
        redis.flushdb()
        final = wait_for_status(client, headers, job_id, {"succeeded", "failed", "cancelled"}, timeout=300)
    assert final["status"] == "succeeded", (tmp_path / "worker.log").read_text()[-4000:]
    assert status_events(app, job_id) == ["queued", "preparing", "running", "succeeded"]
    with app.app_context(), database.connection_context():
        events = list(JobEvent.select().where(JobEvent.job == job_id).order_by(JobEvent.id))
        ref = Job.get_by_id(job_id).backend_ref or {}
    points = [(e.data["type"], e.data["step"]) for e in events if e.kind == "metric"]
    assert len(points) == len(set(points)) == 30
    if backend == "kaggle":
        assert kaggle_emulator.pushes(ref["kernel"].split("/")[-1]) == 1
    assert_nothing_left(settings, job_id)
