"""Factories for rows the services of later issues will create; tests use them to set up state."""
from __future__ import annotations

import uuid

from app.models import Artifact, Dataset, Job, JobEvent


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


def make_event(job, kind: str = "log", message: str = "hello", **fields) -> JobEvent:
    """One event of job."""
    return JobEvent.create(job=job, kind=kind, message=message, **fields)


def make_artifact(job, name: str = "adapter_model.safetensors", **fields) -> Artifact:
    """One artifact of job."""
    values = dict(job=job, name=name, object_key=f"jobs/{job.id}/{name}", size_bytes=42)
    return Artifact.create(**{**values, **fields})
