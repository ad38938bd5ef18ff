"""The fault drill's storage case (issue 13): object storage is down when a finished run is collected. The collect
step is retried with backoff, and once storage is back the job succeeds with every artifact stored once. The S3
server is a private one, so that stopping it disturbs no other test."""
from __future__ import annotations

import os
import signal
import uuid

import pytest
from minio import Minio

from app.db import database
from app.models import Artifact, JobEvent
from tests.support.jobs import job_state, wait_for_status
from tests.support.processes import group_alive
from tests.support.seaweed import seaweed_server
from tests.support.waiting import wait_until
from tests.support.workers import worker_pool

STEPS = {"max_steps": 40, "batch_size": 2, "gradient_accumulation_steps": 1, "max_seq_length": 64,
         "logging_steps": 1, "save_steps": 10, "eval_steps": 1000, "lora_r": 4, "lora_alpha": 8}
ACCESS, SECRET = "outage", "outage-secret"


@pytest.fixture
def storage_dir(tmp_path):
    """The private S3 server's folder: the same server (ports, objects) each time it starts there."""
    return tmp_path / "outage-s3"


@pytest.fixture
def server(storage_dir):
    """The private S3 server, running when the test starts."""
    with seaweed_server(storage_dir, ACCESS, SECRET) as server:
        yield server


@pytest.fixture
def settings(settings, server):
    """The test's settings on the private S3 server, with short leases and reconciler passes."""
    return settings.model_copy(update={
        "minio_endpoint": server.endpoint, "minio_user": ACCESS, "minio_password": SECRET,
        "minio_bucket": f"t-{uuid.uuid4().hex[:20]}", "job_lease_seconds": 4, "reconcile_interval": 5,
        "rate_limits_enabled": False})


def test_storage_down_during_collect_is_retried_until_it_succeeds(app, client, headers, dataset_id, settings, server,
                                                                  storage_dir, tmp_path):
    body = {"dataset_id": dataset_id, "base_model": "tiny-random-llama", "backend": "local", "hyperparameters": STEPS}
    job_id = client.post("/api/v1/jobs", headers=headers, json=body).get_json()["id"]
    with worker_pool(settings, tmp_path / "worker.log", pool_size=2):
        wait_until(lambda: job_state(client, headers, job_id)["progress"]["step"] >= 2, 180, "training to run")
        stopped = _stop(server.pid)
        wait_until(lambda: collect_failures(job_id), 180, "the collect step to fail on the missing storage")
        with seaweed_server(storage_dir, ACCESS, SECRET):
            final = wait_for_status(client, headers, job_id, {"succeeded", "failed", "cancelled"}, timeout=300)
            assert final["status"] == "succeeded", (tmp_path / "worker.log").read_text()[-4000:]
            stored = {item.object_name for item in Minio(settings.minio_endpoint, ACCESS, SECRET, secure=False)
                      .list_objects(settings.minio_bucket, prefix=f"jobs/{job_id}/", recursive=True)}
    assert stopped
    with database.connection_context():
        recorded = {artifact.object_key for artifact in Artifact.select().where(Artifact.job == job_id)}
    assert stored == recorded and any(key.endswith("adapter_model.safetensors") for key in recorded)


def collect_failures(job_id: int) -> int:
    """How many times the job's collect step failed and was put off."""
    with database.connection_context():
        return JobEvent.select().where((JobEvent.job == job_id)
                                       & JobEvent.message.startswith("collect failed")).count()


def _stop(pid: int) -> bool:
    """Kill the S3 server's process group (it runs in a session of its own) and wait until it is gone."""
    os.killpg(pid, signal.SIGKILL)
    wait_until(lambda: not group_alive(pid), 30, "the S3 server to stop")
    return True
