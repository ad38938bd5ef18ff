"""What the compare page shows: overlaid curves, the hyperparameters that differ first, final metrics, samples."""
from __future__ import annotations

import json
from dataclasses import asdict

from flask_babel import lazy_gettext as _l

from app.errors import ValidationFailed
from app.jobs import judging
from app.models import Job, User
from app.storage import ObjectStore
from app.web.compare.chart import CompareChart, Series
from app.web.jobs.forms import FIELDS
from app.web.jobs.views import loss_points
from trainer.config import Hyperparameters

MIN_JOBS, MAX_JOBS = 2, 5
FINAL_METRICS = ("loss", "eval_loss", "eval_accuracy", "eval_perplexity", "tokens_per_second")
FIELD_LABELS = {field.name: field.label for field in FIELDS}


def chosen_jobs(owner: User, values: list[str]) -> list[Job]:
    """The owner's jobs named by the request (ids, repeated or comma-separated), in the order given."""
    ids = list(dict.fromkeys(part.strip() for value in values for part in value.split(",") if part.strip()))
    if len(ids) > MAX_JOBS:
        raise ValidationFailed(f"Pick at most {MAX_JOBS} jobs.", details={"jobs": len(ids)})
    return [Job.get_owned(job_id, owner) for job_id in ids]


def settings_of(job: Job) -> dict:
    """Every setting a run used: the job's choices and each hyperparameter, defaults filled in."""
    hyperparameters = {**asdict(Hyperparameters()), **(job.hyperparameters or {})}
    options = job.run_options or {}
    return {"base_model": job.base_model, "method": job.method, "backend": job.backend,
            "dataset": job.dataset.name if job.dataset_id else None, "sample_count": options.get("sample_count"),
            "init_from": (options.get("init_from") or {}).get("job_id"), **hyperparameters}


# The settings of settings_of that are not hyperparameters (those are named as the job form names them).
SETTING_LABELS = {"base_model": _l("Base model"), "method": _l("Method"), "backend": _l("Backend"),
                  "dataset": _l("Dataset"), "sample_count": _l("Samples"), "init_from": _l("Started from job")}


def setting_label(name: str) -> str:
    """A setting's name in the request's language (the code itself, spaced, for one nothing names)."""
    label = SETTING_LABELS.get(name) or FIELD_LABELS.get(name)
    return str(label) if label is not None else name.replace("_", " ")


def settings_diff(jobs: list[Job]) -> list[dict]:
    """One row per setting, the ones that differ between the jobs first."""
    values = [settings_of(job) for job in jobs]
    names = list(dict.fromkeys(name for settings in values for name in settings))
    rows = [{"name": name, "label": setting_label(name), "values": [v.get(name) for v in values],
             "differs": len({json.dumps(v.get(name), sort_keys=True) for v in values}) > 1} for name in names]
    return sorted(rows, key=lambda row: not row["differs"])


def samples_side_by_side(store: ObjectStore, jobs: list[Job]) -> list[dict]:
    """Each prompt any of the jobs answered, with every job's tuned answer to it (None where it had none)."""
    answers = [{json.dumps(s["messages"]): s for s in judging.read_samples(store, job)} for job in jobs]
    prompts = list(dict.fromkeys(key for answered in answers for key in answered))
    rows = []
    for key in prompts:
        found = [answered.get(key) for answered in answers]
        first = next(sample for sample in found if sample)
        rows.append({"messages": first["messages"], "reference": first.get("reference"),
                     "base": first.get("base"), "tuned": [s["tuned"] if s else None for s in found]})
    return sorted(rows, key=lambda row: -sum(answer is not None for answer in row["tuned"]))


def comparison(store: ObjectStore, jobs: list[Job]) -> dict:
    """The page's values for 2 to 5 jobs."""
    series = [Series(f"#{job.id} {job.name}", *loss_points(job)) for job in jobs]
    return {"jobs": jobs, "chart": CompareChart(series), "settings": settings_diff(jobs),
            "metrics": [{"name": name, "values": [(job.metrics or {}).get(name) for job in jobs]}
                        for name in FINAL_METRICS],
            "samples": samples_side_by_side(store, jobs)}
