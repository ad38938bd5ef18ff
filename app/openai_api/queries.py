"""The lists the dialect pages by cursor: jobs (with a metadata filter), events, checkpoints, tuned models."""
from __future__ import annotations

import peewee

from app import catalog
from app.errors import NotFound
from app.jobs import artifacts, judging, states
from app.models import Dataset, Job, JobEvent, User
from app.openai_api import ids, objects
from app.openai_api.paging import take

# Rows read per round trip while a metadata filter looks for matches.
SCAN_BATCH = 200


def list_jobs(owner: User, after: int | None, limit: int, metadata: dict[str, str]) -> tuple[list[Job], bool]:
    """The owner's jobs older than the job `after`, newest first, whose metadata holds every pair given."""
    # With each job's dataset (its token count is read for trained_tokens), so a page costs one query.
    query = (Job.select(Job, Dataset).join(Dataset, peewee.JOIN.LEFT_OUTER, on=(Job.dataset == Dataset.id))
             .where(Job.owner == owner.id))
    if after is not None:
        query = query.where(Job.id < after)
    query = query.order_by(Job.id.desc())
    if not metadata:
        return take(query.limit(limit + 1), limit)
    # The metadata is JSON on either database (PostgreSQL or SQLite), so it is matched here, batch by batch.
    rows = (row for batch in _batches(query) for row in batch)
    return take(rows, limit, lambda job: all((job.metadata or {}).get(k) == v for k, v in metadata.items()))


def _batches(query):
    """The query's rows, SCAN_BATCH at a time, until none are left."""
    page = 1
    while batch := list(query.paginate(page, SCAN_BATCH)):
        yield batch
        page += 1


def list_events(job: Job, after: int | None, limit: int) -> tuple[list[JobEvent], bool]:
    """The job's events before the event `after`, newest first, as OpenAI lists them."""
    query = JobEvent.select().where(JobEvent.job == job.id)
    if after is not None:
        query = query.where(JobEvent.id < after)
    return take(query.order_by(JobEvent.id.desc()).limit(limit + 1), limit)


def checkpoints(job: Job) -> list[dict]:
    """The checkpoints the job keeps, newest first: its kept checkpoints, any stored checkpoint folder, and the
    final model."""
    steps: dict[int, tuple] = {row.step: (row.metrics or {}, row.created_at) for row in judging.list_checkpoints(job)}
    for artifact in artifacts.list_artifacts(job):
        step = _checkpoint_step(artifact.name)
        if step is not None:
            steps.setdefault(step, ({}, artifact.created_at))
    metrics = _metrics_by_step(job)
    found = [objects.checkpoint_object(job, step, {**metrics.get(step, {}), **kept}, created)
             for step, (kept, created) in steps.items()]
    if job.status == states.SUCCEEDED and job.step not in steps:
        found.append(objects.checkpoint_object(job, job.step, {**metrics.get(job.step, {}), **(job.metrics or {})},
                                               job.finished_at))
    return sorted(found, key=lambda checkpoint: -checkpoint["step_number"])


def _checkpoint_step(name: str) -> int | None:
    """The step of a checkpoint artifact (`…/checkpoint-<step>/…`), None for other files."""
    if not artifacts.is_checkpoint(name):
        return None
    part = next((p for p in name.split("/") if p.startswith("checkpoint-")), "")
    number = part.removeprefix("checkpoint-")
    return int(number) if number.isdigit() else None


def _metrics_by_step(job: Job) -> dict[int, dict]:
    """The job's metric points by step (later values win: an eval point adds eval_loss to its step)."""
    found: dict[int, dict] = {}
    query = JobEvent.select(JobEvent.data).where((JobEvent.job == job.id) & (JobEvent.kind == "metric"))
    for event in query.order_by(JobEvent.id):
        data = event.data or {}
        if isinstance(data.get("step"), int):
            found.setdefault(data["step"], {}).update(data)
    return found


def tuned_jobs(owner: User) -> list[Job]:
    """The owner's succeeded jobs, newest first: each is a model."""
    return list(Job.select().where((Job.owner == owner.id) & (Job.status == states.SUCCEEDED))
                .order_by(Job.id.desc()))


def base_models() -> list[dict]:
    """The catalog as models."""
    return [objects.model_object(entry.id, None, entry.source) for entry in catalog.CATALOG]


def find_model(owner: User, model_id: str) -> dict:
    """One model by id: a catalog entry, or a tuned model of the owner's (`ft:…:ftjob-<id>`); NotFound else."""
    entry = catalog.find(model_id)
    if entry is not None:
        return objects.model_object(entry.id, None, entry.source)
    job_part = model_id.rsplit(":", 1)[-1] if model_id.startswith("ft:") else ""
    try:
        job = Job.get_owned(ids.row_id(ids.JOB, job_part, "model"), owner)
    except NotFound:
        raise NotFound(f"The model '{model_id}' does not exist.", details={"field": "model"}) from None
    if objects.fine_tuned_model(job) != model_id:
        raise NotFound(f"The model '{model_id}' does not exist.", details={"field": "model"})
    return objects.model_object(model_id, job.finished_at, objects.OWNER)
