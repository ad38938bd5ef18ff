"""Factories for rows (datasets, jobs with their events and artifacts) that tests set up state with."""
from __future__ import annotations

import random
import uuid

from app.jobs.artifacts import recount
from app.jobs.events import add_events
from app.models import Artifact, Dataset, Job, JobEvent, utcnow


def make_dataset(owner, **fields) -> Dataset:
    """A ready dataset of owner."""
    values = dict(owner=owner, name=f"dataset-{uuid.uuid4().hex[:6]}", format="chat", status="ready",
                  object_key=f"datasets/{uuid.uuid4().hex}.jsonl", size_bytes=1234, example_count=10)
    return Dataset.create(**{**values, **fields})


def make_job(owner, dataset=None, **fields) -> Job:
    """A queued LoRA job of owner on dataset (made when not given)."""
    values = dict(owner=owner, dataset=dataset or make_dataset(owner), name=f"job-{uuid.uuid4().hex[:6]}",
                  base_model="tiny-random-llama", method="lora", backend="local",
                  hyperparameters={"learning_rate": 2e-4, "epochs": 1})
    return Job.create(**{**values, **fields})


def make_event(job, kind: str = "log", message: str = "hello", data: dict | None = None) -> JobEvent:
    """One event of job, recorded as the app records it (numbered, the job's marks moved)."""
    add_events(job, [(kind, message, data)])
    return JobEvent.select().where(JobEvent.job == job.id).order_by(JobEvent.id.desc()).get()


def make_artifact(job, name: str = "adapter_model.safetensors", **fields) -> Artifact:
    """One artifact of job (counted on the job as the app counts it)."""
    values = dict(job=job, name=name, object_key=f"jobs/{job.id}/{name}", size_bytes=42)
    artifact = Artifact.create(**{**values, **fields})
    recount(job.id)
    return artifact


def running_job(owner, steps: int = 10, total: int = 100, evals: int = 2, logs: int = 5, **fields) -> Job:
    """A running job of owner that has reported `steps` training steps, some evaluations and log lines."""
    now = utcnow()
    job = make_job(owner, make_dataset(owner), status="running", stage="run", started_at=now, step=steps,
                   total_steps=total, epoch=round(steps / total, 2),
                   metrics={"loss": 1.0, "eta_seconds": 42.0, "tokens_per_second": 900.0}, **fields)
    add_history(job, steps, evals, logs)
    return job


def add_history(job: Job, steps: int, evals: int, logs: int) -> None:
    """Metric events for `steps` steps and `evals` evaluations, plus log lines, inserted in bulk."""
    rng = random.Random(job.id)
    rows = [{"job": job.id, "kind": "metric", "message": f"step {step}: loss",
             "data": {"type": "progress", "step": step, "loss": 2.0 / (1 + step / 50) + rng.random() * 0.05}}
            for step in range(1, steps + 1)]
    every = max(1, steps // max(evals, 1))
    rows += [{"job": job.id, "kind": "metric", "message": "eval",
              "data": {"type": "eval", "step": step, "eval_loss": 2.1 / (1 + step / 50)}}
             for step in range(every, steps + 1, every)][:evals]
    rows += [{"job": job.id, "kind": "log", "message": f"log line {index}", "data": None} for index in range(logs)]
    insert_events(job, rows)


def insert_events(job: Job, rows: list[dict]) -> None:
    """Event rows ({kind, message, data}) recorded in bulk, in order, as the app records them."""
    for start in range(0, len(rows), 1000):
        add_events(job, [(row["kind"], row["message"], row["data"]) for row in rows[start:start + 1000]])
