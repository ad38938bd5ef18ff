"""The worker entry point: real RQ workers on real Redis run jobs inside the app with a database."""
from __future__ import annotations

import datetime

from rq import Queue, Worker

from tests.support.waiting import wait_until
from tests.support.workers import idle_workers, worker_pool


def test_worker_runs_a_job_with_the_app_and_database(settings, redis, user, tmp_path):
    queue = Queue("default", connection=redis)
    job = queue.enqueue("workers.tasks.probe")
    with worker_pool(settings, tmp_path / "worker.log"):
        result = job.latest_result(timeout=60)
    assert result is not None, (tmp_path / "worker.log").read_text()
    assert result.type == result.Type.SUCCESSFUL
    assert result.return_value["users"] == 1
    assert result.return_value["app"] == "app"


def test_scheduler_runs_delayed_jobs(settings, redis, tmp_path):
    queue = Queue("default", connection=redis)
    with worker_pool(settings, tmp_path / "worker.log"):
        wait_until(lambda: idle_workers(redis) == 1, 60, "the worker to wait for work")
        job = queue.enqueue_in(datetime.timedelta(seconds=1), "workers.tasks.probe")
        result = job.latest_result(timeout=60)
    assert result is not None and result.type == result.Type.SUCCESSFUL, (tmp_path / "worker.log").read_text()


def test_pool_runs_the_configured_number_of_workers_and_stops_on_sigterm(settings, redis, tmp_path):
    with worker_pool(settings, tmp_path / "worker.log", pool_size=2) as process:
        wait_until(lambda: idle_workers(redis) == 2, 60, "two workers to wait for work")
    assert process.returncode is not None
    wait_until(lambda: Worker.count(connection=redis) == 0, 10, "workers to unregister")


def test_training_queue_jobs_are_served_too(settings, redis, tmp_path):
    job = Queue("training-local", connection=redis).enqueue("workers.tasks.probe")
    with worker_pool(settings, tmp_path / "worker.log"):
        result = job.latest_result(timeout=60)
    assert result is not None and result.type == result.Type.SUCCESSFUL
