"""SIGTERM to gunicorn (what `docker stop web` sends): requests in flight finish, new connections are not served.

The worker's side (a step finishes, or a local training run checkpoints and hands its job back, which then
succeeds once) is tested with real workers in tests/jobs/test_local_jobs.py::test_warm_shutdown_checkpoints...
"""
from __future__ import annotations

import threading
import time

from tests.support.data import as_jsonl
from tests.support.http import HeldUpload, fetch
from tests.support.processes import send_sigterm, wait_stopped
from tests.support.waiting import wait_until
from tests.support.web import gunicorn

CONNECTION_ERRORS = ("ConnectionRefusedError", "ConnectionResetError", "RemoteDisconnected", "BrokenPipeError")
LOADER_THREADS = 4
LOADER_MAX_REQUESTS = 2000


class Loader:
    """Threads requesting the liveness probe back to back; each outcome recorded with its start and end times."""

    def __init__(self, url: str):
        """Prepare LOADER_THREADS threads against url."""
        self.url = url
        self.outcomes: list[tuple[float, float, object]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(LOADER_THREADS)]

    def _run(self) -> None:
        """Request until stopped or LOADER_MAX_REQUESTS outcomes are in; a status, or an exception's name."""
        while not self._stop.is_set() and len(self.outcomes) < LOADER_MAX_REQUESTS:
            started = time.monotonic()
            try:
                reply = fetch(self.url, "/api/v1/health/live")
                outcome: object = reply.status if reply.body.startswith(b"{") else f"{reply.status} truncated"
            except Exception as error:  # any failure is an outcome to judge, never a crash of the loader
                outcome = type(error).__name__
            self.outcomes.append((started, time.monotonic(), outcome))

    def __enter__(self) -> Loader:
        """Start the threads."""
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop and join the threads."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def test_sigterm_lets_requests_in_flight_finish_and_serves_no_new_ones(app, settings, user, make_token, tmp_path):
    token, log = make_token(user), tmp_path / "web.log"
    data = as_jsonl([{"text": "x" * 990}] * 500)
    with gunicorn(settings, log, workers=2) as server:
        url = server.url
        uploads = [HeldUpload(url, token, data, f"held-{index}.jsonl") for index in range(3)]
        for upload in uploads:
            upload.start(300 * 1024)  # more than the app reads at once (256 KiB), so it has begun the file
        wait_until(lambda: len(list(settings.resolved_storage_dir.rglob(".upload-*"))) == 3, 30,
                   "the three uploads to be inside the app")
        with Loader(url) as loader:
            wait_until(lambda: len(loader.outcomes) >= 50, 30, "the load generator to get going")
            signalled_at = time.monotonic()
            send_sigterm(server.process, leader_only=True)  # what `docker stop` does: only PID 1 is told
            wait_until(lambda: "Handling signal: term" in log.read_text(), 10, "gunicorn to begin its shutdown")
            replies = [upload.finish() for upload in uploads]
            stopped = wait_stopped(server.process, 40, signalled_at)
    assert (stopped.returncode, stopped.killed) == (0, False), log.read_text()[-3000:]
    assert [reply.status for reply in replies] == [201, 201, 201], [reply.body for reply in replies]
    # Answered before the signal: all of them served. From the signal on (a request still waiting in the listen
    # backlog when gunicorn closes it included), a request is answered in full or its connection is refused or
    # reset: never an error page.
    before = [outcome for _started, ended, outcome in loader.outcomes if ended < signalled_at]
    around = [outcome for _started, ended, outcome in loader.outcomes if ended >= signalled_at]
    assert before and set(before) == {200}
    assert set(around) <= {200, *CONNECTION_ERRORS}, set(around)
    assert "WORKER TIMEOUT" not in log.read_text()
    refused = fetch_error(url)
    assert refused == "ConnectionRefusedError"


def fetch_error(url: str) -> str | None:
    """The name of the error a request to url fails with, or None when it is answered."""
    try:
        fetch(url, "/api/v1/health/live")
    except OSError as error:
        return type(error).__name__
    return None
