"""Watch a job through the API and its event history while real workers run it."""
from __future__ import annotations

from app.db import database
from app.models import JobEvent
from tests.support.waiting import wait_until


def job_state(client, headers, job_id) -> dict:
    """The job as the API shows it."""
    return client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()


def wait_for_status(client, headers, job_id, wanted: set[str], timeout: float = 180) -> dict:
    """Poll the API until the job reaches one of the wanted statuses."""
    return wait_until(lambda: (state := job_state(client, headers, job_id))["status"] in wanted and state,
                      timeout, f"job {job_id} to be {wanted}")


def status_events(app, job_id) -> list[str]:
    """The statuses the job moved to, in order."""
    with app.app_context(), database.connection_context():
        rows = JobEvent.select().where((JobEvent.job == job_id) & (JobEvent.kind == "status")).order_by(JobEvent.id)
        return [row.data["to"] for row in rows]
