"""Task functions run by the workers: thin, they take ids and call app services."""
from __future__ import annotations

import logging
import os

from flask import current_app
from rq import get_current_job

from app import sweeper
from app.datasets import service as datasets
from app.extensions import get_settings, get_store
from app.jobs import exports, orchestrator
from app.jobs.context import JobContext
from app.models import Dataset, User
from app.playground import runner
from app.storage import StorageError
from app.webhooks import delivery

log = logging.getLogger(__name__)


def probe() -> dict:
    """A trivial job proving a worker reaches the app, its database and Redis."""
    return {"pid": os.getpid(), "app": current_app.name, "users": User.select().count()}


def validate_dataset(dataset_id: int) -> str:
    """Validate a stored upload; storage errors propagate so RQ retries, anything else fails the dataset."""
    # The attempts counted on the row bound the retries of every source (RQ's, the reconciler's).
    dataset = Dataset.get_or_none(Dataset.id == dataset_id)
    if dataset is None:
        return "deleted"
    try:
        outcome = datasets.run_validation(dataset, get_store(), get_settings().dataset_max_record_bytes)
    except StorageError:
        raise
    except Exception as error:  # a bug must not leave the dataset 'processing' forever
        log.exception("validating dataset %s crashed", dataset_id)
        outcome = datasets.fail_validation(dataset, f"Validation failed unexpectedly ({type(error).__name__}).")
    return outcome.status if outcome is not None else "deleted"


def sweep_leftovers() -> dict:
    """The sweep scheduled daily and at worker start (app/sweeper.py); what it removed, by kind."""
    return sweeper.sweep(JobContext.from_app(current_app))


def run_job_step(job_id: int, stage: str) -> str:
    """One orchestration step of a fine-tuning job (see app/jobs/orchestrator.py)."""
    rq_job = get_current_job()
    return orchestrator.run_step(JobContext.from_app(current_app), job_id, stage, rq_job.id if rq_job else None)


def deliver_webhook(delivery_id: int) -> str:
    """One attempt of a webhook delivery (app/webhooks/delivery.py); what became of it."""
    return delivery.deliver(delivery_id, get_settings(), current_app.extensions["redis"])


# The models the playground worker keeps loaded between completions; it runs jobs in its own process (no fork), so
# this lives as long as the worker.
WARM_MODELS = {}


def generate_completion(completion_id: int) -> str:
    """One playground completion (app/playground/runner.py), on the playground worker's warm models."""
    # Imported here, not at the top: torch takes seconds to import, and only the playground worker needs it.
    from trainer import serving

    warm = WARM_MODELS.setdefault("models", serving.WarmModels(get_settings().playground_warm_seconds))
    return runner.run_completion(JobContext.from_app(current_app), completion_id, serving, warm)


def export_job(job_id: int, fmt: str) -> str:
    """Merge and self-check one export of a succeeded job (app/jobs/exports.py)."""
    # Imported here for the same reason as in generate_completion.
    from trainer import export, serving

    return exports.run_export(JobContext.from_app(current_app), job_id, fmt, export, serving)
