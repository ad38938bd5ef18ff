"""Jobs on the local backend, end to end: PostgreSQL, Redis, S3 and real worker processes training for real."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from app.db import database
from app.models import Job, JobEvent
from tests.support.jobs import job_state, status_events, wait_for_status
from tests.support.processes import kill_tree, stop_group
from tests.support.waiting import wait_until
from tests.support.workers import worker_pool

FAST = {"max_steps": 8, "batch_size": 4, "gradient_accumulation_steps": 1, "max_seq_length": 64,
        "logging_steps": 1, "eval_steps": 100, "save_steps": 4, "lora_r": 4, "lora_alpha": 8, "learning_rate": 0.01}
LONG = {**FAST, "max_steps": 100_000, "save_steps": 2}


@pytest.fixture
def settings(s3_settings):
    """S3 storage, short leases and reconciler passes so recoveries happen within a test."""
    return s3_settings.model_copy(update={"job_lease_seconds": 4, "reconcile_interval": 5, "worker_pool_size": 2,
                                         "rate_limits_enabled": False})


def create_job(client, headers, dataset_id, **hyperparameters):
    """POST a local job on the tiny model; returns its JSON."""
    body = {"dataset_id": dataset_id, "base_model": "tiny-random-llama", "backend": "local", "method": "lora",
            "hyperparameters": {**FAST, **hyperparameters}}
    response = client.post("/api/v1/jobs", headers=headers, json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_local_job_trains_to_success_with_loss_events_and_an_adapter(app, client, headers, dataset_id, settings,
                                                                     redis, tmp_path):
    job = create_job(client, headers, dataset_id)
    with worker_pool(settings, tmp_path / "worker.log", pool_size=2):
        final = wait_for_status(client, headers, job["id"], {"succeeded", "failed"})
    assert final["status"] == "succeeded", (final, (tmp_path / "worker.log").read_text()[-3000:])
    assert final["progress"]["step"] == 8 and final["progress"]["percent"] == 100.0
    assert status_events(app, job["id"]) == ["queued", "preparing", "running", "succeeded"]
    events = client.get(f"/api/v1/jobs/{job['id']}/events", headers=headers).get_json()["data"]
    losses = [e["data"]["loss"] for e in events if e["kind"] == "metric" and "loss" in e["data"]]
    assert len(losses) >= 8
    names = {a["name"] for a in client.get(f"/api/v1/jobs/{job['id']}/artifacts", headers=headers).get_json()["data"]}
    assert {"adapter/adapter_model.safetensors", "adapter/adapter_config.json", "metrics.json"} <= names
    assert not any(name.startswith("checkpoints/") for name in names)
    assert_adapter_loads(client, headers, job["id"], names, tmp_path / "download")


def assert_adapter_loads(client, headers, job_id, names, folder: Path) -> None:
    """Download the adapter folder through the API and load it onto the tiny model with peft."""
    import peft

    from trainer.config import TINY_MODEL_ID
    from trainer.models import build_tiny_model, load_tokenizer

    folder.mkdir()
    for name in (n for n in names if n.startswith("adapter/")):
        response = client.get(f"/api/v1/jobs/{job_id}/artifacts/{name}", headers=headers)
        assert response.status_code == 200
        (folder / name.split("/", 1)[1]).write_bytes(response.get_data())
    tokenizer = load_tokenizer(TINY_MODEL_ID)
    model = peft.PeftModel.from_pretrained(build_tiny_model(tokenizer), folder)
    assert model.peft_config["default"].r == 4


def test_cancel_of_a_queued_job_is_immediate(app, client, headers, dataset_id):
    job = create_job(client, headers, dataset_id)
    response = client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=headers)
    assert response.status_code == 202 and response.get_json()["status"] == "cancelled"
    assert client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=headers).status_code == 409


def test_cancel_of_a_running_local_job_stops_training_within_seconds(app, client, headers, dataset_id, settings,
                                                                    tmp_path):
    job = create_job(client, headers, dataset_id, **LONG)
    with worker_pool(settings, tmp_path / "worker.log", pool_size=2):
        wait_until(lambda: job_state(client, headers, job["id"])["progress"]["step"] >= 2, 120, "training to start")
        client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=headers)
        final = wait_for_status(client, headers, job["id"], {"cancelled", "failed", "succeeded"}, timeout=30)
        assert final["status"] == "cancelled"
        assert not training_processes(settings, job["id"]), "the training process outlived the cancel"


def training_processes(settings, job_id: int) -> list[int]:
    """Pids of training programs working on this job's run folder."""
    folder = f"{settings.data_dir}/runs/{job_id}/".encode()
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            zombie = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except (OSError, IndexError):
            continue
        if zombie:
            continue
        if any(part.endswith(b".pyz") for part in command) and any(folder in part for part in command):
            found.append(int(pid))
    return found


def test_worker_killed_mid_training_is_resumed_and_the_job_finishes_once(app, client, headers, dataset_id, settings,
                                                                       redis, tmp_path):
    job = create_job(client, headers, dataset_id, max_steps=40, save_steps=2)
    with worker_pool(settings, tmp_path / "worker-1.log", pool_size=2) as pool:
        wait_until(lambda: job_state(client, headers, job["id"])["progress"]["step"] >= 4, 120, "a checkpoint")
        kill_tree(pool.pid)
    wait_until(lambda: not training_processes(settings, job["id"]), 10, "the killed training process to be gone")
    wait_until(lambda: not lease_held(app, job["id"]), 30, "the dead run's lease to lapse")
    with worker_pool(settings, tmp_path / "worker-2.log", pool_size=2):
        final = wait_for_status(client, headers, job["id"], {"succeeded", "failed"}, timeout=240)
    assert final["status"] == "succeeded", (tmp_path / "worker-2.log").read_text()[-3000:]
    assert status_events(app, job["id"]).count("succeeded") == 1
    with app.app_context(), database.connection_context():
        events = JobEvent.select().where(JobEvent.job == job["id"]).order_by(JobEvent.id)
        starts = [e.data for e in events if (e.data or {}).get("type") == "start"]
    assert len(starts) == 2 and starts[1].get("resumed_from_step", 0) >= 2, starts


def lease_held(app, job_id: int) -> bool:
    """Whether the job's local-run lease is still in force."""
    from app.jobs.leases import lease_is_live

    with app.app_context(), database.connection_context():
        return lease_is_live(Job.get_by_id(job_id))


def test_work_lost_to_a_redis_flush_is_recovered(app, client, headers, dataset_id, settings, redis, tmp_path):
    job = create_job(client, headers, dataset_id)
    redis.flushdb()
    with worker_pool(settings, tmp_path / "worker.log", pool_size=2):
        final = wait_for_status(client, headers, job["id"], {"succeeded", "failed"})
    assert final["status"] == "succeeded"
    with app.app_context(), database.connection_context():
        assert JobEvent.select().where((JobEvent.job == job["id"]) & JobEvent.message.contains("recovered")).exists()


def test_job_creation_checks_every_field(client, headers, dataset_id, app, user):
    body = {"dataset_id": 99999, "base_model": "not a model!", "backend": "moon", "method": "magic",
            "hyperparameters": {"learning_rate": 5, "batch_size": 0, "bogus": 1}}
    response = client.post("/api/v1/jobs", headers=headers, json=body)
    assert response.status_code == 422
    assert set(response.get_json()["error"]["details"]) == {
        "dataset_id", "base_model", "backend", "method", "hyperparameters.learning_rate",
        "hyperparameters.batch_size", "hyperparameters.bogus"}
    with app.app_context(), database.connection_context():
        assert Job.select().count() == 0


def test_warm_shutdown_checkpoints_hands_the_job_back_and_it_resumes(app, client, headers, dataset_id, settings,
                                                                    tmp_path):
    job = create_job(client, headers, dataset_id, max_steps=400, save_steps=1000)
    with worker_pool(settings, tmp_path / "worker-1.log", pool_size=2) as pool:
        wait_until(lambda: job_state(client, headers, job["id"])["progress"]["step"] >= 3, 120, "training to run")
        stopped = stop_group(pool, leader_only=True)  # what `docker stop` does: only the pool's main process is told
    assert (stopped.returncode, stopped.killed) == (0, False), (tmp_path / "worker-1.log").read_text()[-3000:]
    state = job_state(client, headers, job["id"])
    assert state["status"] == "running" and state["stage"] == "run"
    with worker_pool(settings, tmp_path / "worker-2.log", pool_size=2):
        final = wait_for_status(client, headers, job["id"], {"succeeded", "failed"})
    assert final["status"] == "succeeded"
    with app.app_context(), database.connection_context():
        events = list(JobEvent.select().where(JobEvent.job == job["id"]).order_by(JobEvent.id))
    starts = [e.data for e in events if (e.data or {}).get("type") == "start"]
    assert starts[1].get("resumed_from_step", 0) >= 3, "\n".join(e.message for e in events if e.kind != "metric")
    assert any("handed back" in e.message for e in events)


def pid_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_the_training_program_dies_with_its_supervisor(app, client, headers, dataset_id, settings, tmp_path):
    # Silent (no progress or checkpoint lines): a program that writes would die of the closed pipe anyway.
    job = create_job(client, headers, dataset_id, **{**LONG, "logging_steps": 10**6, "save_steps": 10**6})
    with worker_pool(settings, tmp_path / "worker.log", pool_size=2):
        [program] = wait_until(lambda: training_processes(settings, job["id"]), 120, "training to start")
        supervisor = int(Path(f"/proc/{program}/stat").read_text().rsplit(")", 1)[1].split()[1])
        os.kill(supervisor, signal.SIGKILL)  # the work horse only: the program runs in a session of its own
        wait_until(lambda: not pid_alive(program), 10, "the training program to die with its supervisor")


def test_a_supervisor_that_fails_stops_its_training_program_and_frees_the_lease(app, client, headers, dataset_id,
                                                                               settings, monkeypatch):
    from app.jobs import orchestrator
    from app.jobs.backends.local import LocalRun
    from app.jobs.context import JobContext

    job_id = create_job(client, headers, dataset_id, **LONG)["id"]
    started = []

    def record_then_break(self, batch):
        started.extend(training_processes(settings, job_id))
        raise RuntimeError("the supervisor broke")

    monkeypatch.setattr(LocalRun, "record", record_then_break)
    with app.app_context(), database.connection_context():
        ctx = JobContext.from_app(app)
        for _ in range(3):  # prepare, submit, run
            job = Job.get_by_id(job_id)
            orchestrator.run_step(ctx, job_id, job.stage, job.rq_job_id)
        job = Job.get_by_id(job_id)
    assert started and not any(pid_alive(pid) for pid in started), "the training program outlived its supervisor"
    assert (job.status, job.lease_owner) == ("failed", None)
    assert job.error == "The run step failed: RuntimeError: the supervisor broke"


SUPERVISOR = """
import subprocess, sys, time
from app.jobs.backends.local import _die_with
import os
child = subprocess.Popen(["sleep", "300"], start_new_session=True, preexec_fn=_die_with(os.getpid()))
print(child.pid, flush=True)
time.sleep(300)
"""


def test_a_child_started_by_the_local_backend_is_killed_by_the_kernel_when_its_parent_dies(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", SUPERVISOR], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2])
    child = int(parent.stdout.readline())
    assert pid_alive(child)
    parent.kill()
    parent.wait()
    wait_until(lambda: not pid_alive(child), 10, "the orphaned child to be killed")
