"""The inputs of a training run: the datasets as files, the config, where the model comes from."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from app import catalog
from app.jobs import judging
from app.jobs.artifacts import sha256_of
from app.jobs.backends import BackendError, TrainingInputs
from app.jobs.context import JobContext
from app.models import Dataset, Installation, Job
from trainer.bundle import build_bundle
from trainer.config import TINY_MODEL_ID

TRAIN_FILE, VALIDATION_FILE = "train.jsonl", "validation.jsonl"


def training_config(job: Job, with_validation: bool) -> dict:
    """The training program's config for this job (see docs/TRAINING.md); catalog ids become hub ids."""
    entry = catalog.find(job.base_model)
    return {"base_model": entry.hub_id if entry else job.base_model, "method": job.method, "train_file": TRAIN_FILE,
            "validation_file": VALIDATION_FILE if with_validation else None,
            "hyperparameters": job.hyperparameters or {}, **judging.config_options(job)}


def model_source(model_id: str) -> str:
    """builtin for the built-in tiny model, else hub (the kernel downloads it, so it needs internet)."""
    entry = catalog.find(model_id)
    return "builtin" if model_id == TINY_MODEL_ID or (entry and entry.source == "builtin") else "hub"


def gather(ctx: JobContext, job: Job) -> TrainingInputs:
    """Download the job's datasets into its run folder and describe the run; idempotent."""
    data_dir = ctx.runs_dir(job.id) / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    _download(ctx, job.dataset_id, data_dir / TRAIN_FILE)
    with_validation = job.validation_dataset_id is not None
    if with_validation:
        _download(ctx, job.validation_dataset_id, data_dir / VALIDATION_FILE)
    judging.download_init_adapter(ctx.store, job, data_dir)
    config = training_config(job, with_validation)
    (data_dir.parent / "config.json").write_text(json.dumps(config, indent=2))
    digest = hashlib.sha256(b"".join(sha256_of(p).encode() for p in sorted(data_dir.iterdir()))).hexdigest()
    return TrainingInputs(job_id=job.id, config=config, data_dir=data_dir, dataset_sha256=digest,
                          model_source=model_source(job.base_model),
                          training_program=build_bundle(ctx.settings.data_dir / "bundles"),
                          installation_id=Installation.current_id(), owner_id=job.owner_id)


def _download(ctx: JobContext, dataset_id: int | None, target: Path) -> None:
    """Copy a dataset's canonical records to target (skipped when already there)."""
    dataset = Dataset.get_or_none(Dataset.id == dataset_id) if dataset_id else None
    if dataset is None or not dataset.normalized_key:
        raise BackendError("The job's dataset was deleted or is not ready.", transient=False)
    if target.exists() and target.stat().st_size > 0:
        return
    partial = target.with_suffix(".partial")
    with partial.open("wb") as out, ctx.store.iter_chunks(dataset.normalized_key) as chunks:
        for chunk in chunks:
            out.write(chunk)
    partial.replace(target)
