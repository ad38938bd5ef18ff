"""The worker entry point: real RQ workers on real Redis run jobs inside the app with a database."""
from __future__ import annotations

import datetime

from rq import Queue, Worker

from tests.support.processes import group_alive, stop_group
from tests.support.waiting import wait_until
from tests.support.workers import idle_workers, worker_pool
from workers.worker import WAKE_UP_SECONDS

# A worker notices a stop request within WAKE_UP_SECONDS (its blocking wait for work); the rest is slack for a
# busy machine. A pool that ignores SIGTERM is still running then, and gets SIGKILL.
STOP_BOUND_SECONDS = 4 * WAKE_UP_SECONDS


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


def test_pool_runs_the_configured_number_of_workers_and_stops_by_itself_on_sigterm(settings, redis, tmp_path):
    log = tmp_path / "worker.log"
    with worker_pool(settings, log, pool_size=2) as pool:
        wait_until(lambda: idle_workers(redis) == 2, 60, "two workers to wait for work")
        stopped = stop_group(pool, STOP_BOUND_SECONDS, leader_only=True)  # `docker stop` tells only PID 1
    assert not stopped.killed, (f"the pool was still running {STOP_BOUND_SECONDS} s after SIGTERM and needed "
                                f"SIGKILL:\n{log.read_text()[-2000:]}")
    assert stopped.returncode == 0, log.read_text()[-2000:]
    assert not group_alive(pool.pid), "a worker outlived the pool"
    assert Worker.count(connection=redis) == 0, "every worker unregistered on its way out"


def test_training_queue_jobs_are_served_too(settings, redis, tmp_path):
    job = Queue("training-local", connection=redis).enqueue("workers.tasks.probe")
    with worker_pool(settings, tmp_path / "worker.log"):
        result = job.latest_result(timeout=60)
    assert result is not None and result.type == result.Type.SUCCESSFUL
