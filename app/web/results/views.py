"""What a job's results section shows: samples, checkpoints and the validation-accuracy chart, in few queries."""
from __future__ import annotations

from peewee import fn

from app.jobs import judging, states
from app.models import Job, JobEvent
from app.storage import ObjectStore
from app.web.jobs.chart import LossChart
from app.web.live import owned_rows

# The series of an evaluation's metric points.
EVAL_SERIES = "eval"


def results_job(job_id: int, user_id: int) -> Job | None:
    """The user's job with its owner (None for another's, or a deactivated user) and the id of its last
    evaluation (`last_eval`), what the section's version is drawn from: one query, an index lookup."""
    last_eval = (JobEvent.select(fn.MAX(JobEvent.id))
                 .where((JobEvent.job == Job.id) & (JobEvent.series == EVAL_SERIES)).alias("last_eval"))
    return owned_rows(Job.select(Job, last_eval), Job, user_id).where(Job.id == job_id).first()


def accuracy_points(job: Job) -> list[tuple[int, float]]:
    """(step, validation mean token accuracy) of each evaluation (evaluations are few: no thinning needed)."""
    rows = (JobEvent.select(JobEvent.data).where((JobEvent.job == job.id) & (JobEvent.series == EVAL_SERIES))
            .order_by(JobEvent.id).tuples())
    points = []
    for (data,) in rows:
        data = JobEvent.data.python_value(data) if isinstance(data, str) else data
        if isinstance(data.get("step"), int) and isinstance(data.get("eval_accuracy"), (int, float)):
            points.append((data["step"], float(data["eval_accuracy"])))
    return points


def results_panel(store: ObjectStore, job: Job) -> dict:
    """The section's values; samples and checkpoints exist only once the job succeeded."""
    done = job.status == states.SUCCEEDED
    accuracy = accuracy_points(job)
    return {"job": job, "active": job.status in states.ACTIVE,
            "samples": judging.read_samples(store, job) if done else [],
            "checkpoints": judging.list_checkpoints(job) if done else [],
            "accuracy": LossChart([], accuracy, job.total_steps) if accuracy else None}
