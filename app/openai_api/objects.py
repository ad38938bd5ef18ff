"""The Studio's rows as the objects OpenAI's client parses: `fine_tuning.job`, `.event`, `.checkpoint`, `file`,
`model`; no Flask here."""
from __future__ import annotations

import calendar
import datetime

from app.jobs import states
from app.models import Dataset, Job, JobEvent
from app.openai_api import ids
from app.openai_api.translation import base_learning_rate

# Our statuses in OpenAI's: preparing a run is still waiting for it, as far as a client can tell.
STATUSES = {states.QUEUED: "queued", states.PREPARING: "queued", states.RUNNING: "running",
            states.SUCCEEDED: "succeeded", states.FAILED: "failed", states.CANCELLED: "cancelled"}
FILE_STATUSES = {"ready": "processed", "invalid": "error", "processing": "uploaded"}
METHOD_TYPES = {"dpo": "dpo"}
OWNER = "studio"


def unix(moment: datetime.datetime | None) -> int | None:
    """A stored (naive UTC) timestamp as Unix seconds."""
    return calendar.timegm(moment.utctimetuple()) if moment else None


def fine_tuned_model(job: Job) -> str | None:
    """The tuned model's name, as OpenAI forms it (`ft:<base>:<suffix>:<job id>`), once the job succeeded."""
    if job.status != states.SUCCEEDED:
        return None
    return f"ft:{job.base_model}:{job.suffix or ''}:{ids.public_id(ids.JOB, job.id)}"


def job_object(job: Job) -> dict:
    """A fine_tuning.job."""
    hyperparameters = job.hyperparameters or {}
    reported = {"n_epochs": hyperparameters.get("epochs"), "batch_size": hyperparameters.get("batch_size"),
                "learning_rate_multiplier": _multiplier(job)}
    if "beta" in hyperparameters:
        reported["beta"] = hyperparameters["beta"]
    method_type = METHOD_TYPES.get(job.method, "supervised")
    return {
        "id": ids.public_id(ids.JOB, job.id), "object": "fine_tuning.job", "created_at": unix(job.created_at),
        "finished_at": unix(job.finished_at), "model": job.base_model, "fine_tuned_model": fine_tuned_model(job),
        "organization_id": f"user-{job.owner_id}", "status": _status(job),
        "training_file": _file_id(job.dataset_id), "validation_file": _file_id(job.validation_dataset_id),
        "hyperparameters": reported, "method": {"type": method_type, method_type: {"hyperparameters": reported}},
        "result_files": [], "trained_tokens": _trained_tokens(job), "error": _error(job),
        "seed": hyperparameters.get("seed", 42), "estimated_finish": _estimated_finish(job),
        "integrations": [], "metadata": job.metadata, "user_provided_suffix": job.suffix,
    }


def _status(job: Job) -> str:
    """OpenAI's status: a running job asked to pause reads `paused`."""
    return "paused" if job.paused_at is not None and job.status == states.RUNNING else STATUSES[job.status]


def _file_id(dataset_id: int | None) -> str | None:
    """The file id of a dataset, if the job still has it."""
    return ids.public_id(ids.FILE, dataset_id) if dataset_id else None


def _multiplier(job: Job) -> float | None:
    """The learning rate as a multiple of the model's base rate."""
    rate = (job.hyperparameters or {}).get("learning_rate")
    return round(rate / base_learning_rate(job.base_model, job.method), 6) if rate else None


def _trained_tokens(job: Job) -> int | None:
    """Tokens trained on, estimated from the dataset's count and the epochs, once the job succeeded."""
    if job.status != states.SUCCEEDED or job.dataset is None:
        return None
    total = ((job.dataset.stats or {}).get("tokens") or {}).get("total")
    return int(total * (job.hyperparameters or {}).get("epochs", 1)) if total else None


def _error(job: Job) -> dict | None:
    """What went wrong, for a failed job."""
    if job.status != states.FAILED:
        return None
    return {"code": "training_failed", "message": job.error or "The job failed.", "param": None}


def _estimated_finish(job: Job) -> int | None:
    """When a running job should end, from its ETA."""
    eta = (job.metrics or {}).get("eta_seconds")
    if job.status != states.RUNNING or eta is None:
        return None
    return unix(job.updated_at + datetime.timedelta(seconds=float(eta)))


def event_object(event: JobEvent) -> dict:
    """A fine_tuning.job.event: metric points as `metrics` with OpenAI's names, the rest as messages."""
    data = event.data or {}
    failed = event.kind == "status" and data.get("to") == states.FAILED
    level = "error" if failed or data.get("type") == "error" else "info"
    body = {"id": ids.public_id(ids.EVENT, event.id), "object": "fine_tuning.job.event",
            "created_at": unix(event.created_at), "level": level, "message": event.message or event.kind,
            "type": "metrics" if event.kind == "metric" else "message", "data": data}
    if event.kind == "metric":
        body["data"] = _metrics(data)
    return body


def _metrics(data: dict) -> dict:
    """A metric point's values under OpenAI's names (the Studio's own keys kept too)."""
    named = {"step": data.get("step"), "total_steps": data.get("total_steps"), "train_loss": data.get("loss"),
             "valid_loss": data.get("eval_loss")}
    return {**data, **{key: value for key, value in named.items() if value is not None}}


def file_object(dataset: Dataset) -> dict:
    """A file (purpose fine-tune): processed once the dataset is ready, error when it is invalid."""
    errors = (dataset.validation_errors or {}).get("errors") or []
    details = "; ".join(_problem(problem) for problem in errors[:5]) if dataset.status == "invalid" else None
    return {"id": ids.public_id(ids.FILE, dataset.id), "object": "file", "bytes": dataset.size_bytes,
            "created_at": unix(dataset.created_at), "filename": dataset.original_filename or dataset.name,
            "purpose": "fine-tune", "status": FILE_STATUSES.get(dataset.status, "uploaded"),
            "status_details": details or None, "expires_at": None}


def _problem(problem: dict) -> str:
    """One validation problem as a line of text."""
    where = f"line {problem['line']}: " if problem.get("line") else ""
    return f"{where}{problem.get('message', '')}"


def model_object(model_id: str, created: datetime.datetime | None, owned_by: str = OWNER) -> dict:
    """A model."""
    return {"id": model_id, "object": "model", "created": unix(created) or 0, "owned_by": owned_by}


def checkpoint_object(job: Job, step: int, metrics: dict, created: datetime.datetime | None) -> dict:
    """A fine_tuning.job.checkpoint at one step, with OpenAI's metric names."""
    job_id = ids.public_id(ids.JOB, job.id)
    return {"id": f"{ids.CHECKPOINT}-{job.id}-{step}", "object": "fine_tuning.job.checkpoint",
            "created_at": unix(created), "fine_tuning_job_id": job_id, "step_number": step,
            "fine_tuned_model_checkpoint": f"ft:{job.base_model}:{job.suffix or ''}:{job_id}:ckpt-step-{step}",
            "metrics": {"step": step, "train_loss": metrics.get("loss"), "valid_loss": metrics.get("eval_loss"),
                        "full_valid_loss": metrics.get("eval_loss")}}
