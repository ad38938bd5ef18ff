"""The sweeper: run folders of finished jobs, stale downloads and uploads, objects nothing points to, and (opted
in) a finished job's Kaggle dataset go; what anything still uses stays. Scheduled daily and at worker start."""
from __future__ import annotations

import hashlib
import io
import os
import time
from datetime import timedelta

import pytest
from minio import Minio
from rq import Queue
from rq.registry import ScheduledJobRegistry

from app import sweeper
from app.db import database
from app.factory import create_app
from app.jobs.backends import TrainingInputs
from app.jobs.context import JobContext
from app.models import Dataset, Job, utcnow
from app.queue import DEFAULT_QUEUE
from tests.kaggle_emulator import KaggleEmulator
from tests.support.datasets import bucket_keys
from tests.support.factories import make_artifact, make_dataset, make_job
from tests.support.waiting import wait_until
from tests.support.workers import worker_pool

DAY = 24 * 3600


def age(path, seconds: float) -> None:
    """Make path look last written seconds ago."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def put(store, *keys: str) -> None:
    """Store a small object under each key."""
    for key in keys:
        store.put(key, io.BytesIO(b"leftover?"))


def removed_metric(client, kind: str) -> float:
    """studio_sweeper_removed_total{kind} as /api/v1/metrics shows it."""
    for line in client.get("/api/v1/metrics").get_data(as_text=True).splitlines():
        if line.startswith(f'studio_sweeper_removed_total{{kind="{kind}"}}'):
            return float(line.split()[-1])
    return 0.0


@pytest.fixture
def ctx(app) -> JobContext:
    """The app's job context (its store, Redis and backends)."""
    return JobContext.from_app(app)


def test_sweep_removes_run_folders_of_finished_and_vanished_jobs_and_stale_downloads(app, ctx, owner, settings):
    with app.app_context(), database.connection_context():
        active, finished = make_job(owner, status="running"), make_job(owner, status="succeeded")
    runs = settings.data_dir / "runs"
    for job_id in (active.id, finished.id, 987654):
        (runs / str(job_id) / "data").mkdir(parents=True)
        (runs / str(job_id) / "data" / "train.jsonl").write_text("{}\n")
    stale, fresh = (runs / str(active.id) / "data" / name for name in ("a.jsonl.partial", "b.jsonl.partial"))
    stale.write_text("half")
    fresh.write_text("half")
    age(stale, DAY + 60)
    with app.app_context(), database.connection_context():
        removed = sweeper.sweep(ctx)
    assert removed["run_folders"] == 2 and removed["temporary_downloads"] == 1
    assert sorted(path.name for path in runs.iterdir()) == [str(active.id)]
    assert not stale.exists() and fresh.exists() and (runs / str(active.id) / "data" / "train.jsonl").exists()


def test_sweep_removes_objects_no_row_points_to_after_the_grace_period(app, ctx, client, owner, settings):
    with app.app_context(), database.connection_context():
        dataset = make_dataset(owner, object_key="datasets/kept/original", normalized_key="datasets/kept/n.jsonl",
                               index_key="datasets/kept/n.index")
        artifact = make_artifact(make_job(owner, dataset, status="succeeded"), object_key="jobs/1/artifacts/a.bin")
    kept = [dataset.object_key, dataset.normalized_key, dataset.index_key, artifact.object_key]
    put(ctx.store, *kept, "datasets/orphan/original", "jobs/1/artifacts/orphan.bin")
    with app.app_context(), database.connection_context():
        assert sweeper.sweep(ctx)["orphan_objects"] == 0, "young objects may belong to an upload in flight"
        later = utcnow() + timedelta(seconds=settings.sweep_grace_seconds + 60)
        assert sweeper.sweep(ctx, now=later)["orphan_objects"] == 2
    assert sorted(bucket_keys(settings)) == sorted(kept)
    assert removed_metric(client, "orphan_objects") == 2


def test_sweep_aborts_half_written_uploads_and_finishes_interrupted_deletions(app, ctx, client, owner, settings):
    ctx.store.check()
    minio = Minio(settings.minio_endpoint, settings.minio_user, settings.minio_password, secure=False)
    minio._create_multipart_upload(settings.minio_bucket, "datasets/crashed/original", {})
    with app.app_context(), database.connection_context():
        doomed = make_dataset(owner, status="deleting", object_key="datasets/doomed/original")
    put(ctx.store, doomed.object_key)
    with app.app_context(), database.connection_context():
        removed = sweeper.sweep(ctx, now=utcnow() + timedelta(seconds=settings.sweep_grace_seconds + 60))
        assert Dataset.get_or_none(Dataset.id == doomed.id) is None
    assert removed["partial_uploads"] == 1 and removed["deleted_datasets"] == 1
    assert not minio._list_multipart_uploads(settings.minio_bucket).uploads
    assert bucket_keys(settings) == [] and removed_metric(client, "partial_uploads") == 1


@pytest.fixture
def kaggle(tmp_path, monkeypatch) -> KaggleEmulator:
    """A Kaggle emulator with the account alice, the kaggle client of this process pointed at it."""
    with KaggleEmulator(tmp_path / "kaggle", {"alice": "alice-key"}) as emulator:
        for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        for name, value in emulator.client_env().items():
            monkeypatch.setenv(name, value)
        yield emulator


def kaggle_job(app, owner, tmp_path, **ref) -> Job:
    """A finished Kaggle job whose private dataset was uploaded to Kaggle."""
    data = tmp_path / "job-data"
    data.mkdir()
    (data / "train.jsonl").write_text('{"text": "hello"}\n')
    inputs = TrainingInputs(job_id=7, config={}, data_dir=data, model_source="builtin", training_program=data,
                            dataset_sha256=hashlib.sha256(b"hello").hexdigest())
    with app.app_context(), database.connection_context():
        prepared = JobContext.from_app(app).backend("kaggle").prepare(inputs, {})
        return make_job(owner, backend="kaggle", status="succeeded", backend_ref={**prepared, **ref})


@pytest.mark.parametrize("opted_in", [True, False])
def test_a_finished_jobs_kaggle_dataset_is_deleted_only_when_opted_in(settings, owner, kaggle, tmp_path, opted_in):
    app = create_app(settings.model_copy(update={
        "training_backends": "local,kaggle", "kaggle_username": "alice", "kaggle_key": "alice-key",
        "sweep_kaggle_datasets": opted_in}))
    finished = kaggle_job(app, owner, tmp_path, remote_state="complete")
    assert len(kaggle.datasets()) == 1
    with app.app_context(), database.connection_context():
        assert sweeper.sweep(JobContext.from_app(app))["kaggle_datasets"] == int(opted_in)
        assert sweeper.sweep(JobContext.from_app(app))["kaggle_datasets"] == 0
        ref = Job.get_by_id(finished.id).backend_ref
    assert len(kaggle.datasets()) == (0 if opted_in else 1)
    assert bool(ref.get("dataset_deleted_at")) == opted_in
    assert kaggle.calls("DeleteDataset") == int(opted_in), "a deleted dataset is not asked for again"


def test_a_sweep_runs_as_the_workers_start_and_the_daily_one_is_scheduled_once(app, settings, redis, tmp_path):
    orphan = settings.data_dir / "runs" / "424242"
    orphan.mkdir(parents=True)
    queue = Queue(DEFAULT_QUEUE, connection=redis)
    registry = ScheduledJobRegistry(queue=queue)
    with worker_pool(settings, tmp_path / "worker.log"):
        wait_until(lambda: not orphan.exists(), 60, "a sweep once the workers started")
    assert registry.get_job_ids() == [sweeper.DAILY_JOB_ID]
    due = registry.get_scheduled_time(sweeper.DAILY_JOB_ID).replace(tzinfo=None)
    assert timedelta(hours=23) < due - utcnow() <= timedelta(hours=24)
    for _ in range(2):
        sweeper.schedule_sweeps(queue)
    assert queue.job_ids == [sweeper.START_JOB_ID] and registry.get_job_ids() == [sweeper.DAILY_JOB_ID]
