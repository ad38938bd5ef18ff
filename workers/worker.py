"""The RQ worker class: each job runs inside the app context with its own database connection."""
from __future__ import annotations

from rq import Worker

from app import create_app
from app.db import database

# How long a worker blocks waiting for work. A stop signal delivered to one of RQ's helper threads
# is only acted on when the main thread wakes up, so this bounds how long a shutdown can hang.
WAKE_UP_SECONDS = 5


class StudioWorker(Worker):
    """An RQ worker that builds the Studio app once per worker process."""

    @property
    def dequeue_timeout(self) -> int:
        """Seconds of one blocking wait for work (RQ's default is several minutes)."""
        return WAKE_UP_SECONDS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Built after the pool forked this process, so no client crosses a fork; create_app connects nothing.
        self.app = create_app()

    def perform_job(self, job, queue, execution) -> bool:
        """Run the job (in the work horse) with an app context and a connection released at the end."""
        with self.app.app_context(), database.connection_context():
            return super().perform_job(job, queue, execution)
