"""How models look in the API: plain dicts with ISO-8601 UTC timestamps."""
from __future__ import annotations

import datetime

from flask import url_for

from app.jobs.states import ACTIVE
from app.models import Artifact, Checkpoint, Dataset, Job, JobEvent, WebhookDelivery, WebhookEndpoint


def iso(moment: datetime.datetime | None) -> str | None:
    """A stored (naive UTC) timestamp as ISO 8601 with a Z."""
    return moment.isoformat(timespec="seconds") + "Z" if moment else None


def dataset_dict(dataset: Dataset) -> dict:
    """A dataset with its status and what validation found."""
    return {
        "id": dataset.id,
        "name": dataset.name,
        "filename": dataset.original_filename,
        "file_format": dataset.file_format,
        "format": dataset.format,
        "status": dataset.status,
        "size_bytes": dataset.size_bytes,
        "sha256": dataset.sha256,
        "example_count": dataset.example_count,
        "stats": dataset.stats,
        "errors": dataset.validation_errors,
        "created_at": iso(dataset.created_at),
        "updated_at": iso(dataset.updated_at),
    }


def job_dict(job: Job) -> dict:
    """A job with its progress and latest metrics."""
    percent = round(100 * job.step / job.total_steps, 1) if job.total_steps else None
    eta = (job.metrics or {}).get("eta_seconds") if job.status == "running" else None
    return {
        "id": job.id,
        "name": job.name,
        "status": job.status,
        "dataset_id": job.dataset_id,
        "validation_dataset_id": job.validation_dataset_id,
        "base_model": job.base_model,
        "method": job.method,
        "backend": job.backend,
        "hyperparameters": job.hyperparameters,
        "run_options": job.run_options,
        "progress": {"step": job.step, "total_steps": job.total_steps, "epoch": job.epoch, "percent": percent,
                     "eta_seconds": eta},
        "stage": job.stage,
        "cancel_requested": job.cancel_requested_at is not None,
        "metrics": {k: v for k, v in (job.metrics or {}).items() if k != "reported_steps"} if job.metrics else None,
        "error": job.error,
        "attempts": job.attempts,
        "backend_account": job.backend_account,
        "session": (job.backend_ref or {}).get("session", 1) if (job.backend_ref or {}).get("kernel") else None,
        "waiting_reason": (job.backend_ref or {}).get("waiting_reason") if job.status in ACTIVE else None,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
    }


def kaggle_link_dict(view: dict) -> dict:
    """A user's Kaggle link as they (or an admin) see it: never the key or token."""
    return {**view, "linked_at": iso(view["linked_at"])}


def event_dict(event: JobEvent) -> dict:
    """One event of a job's history."""
    return {
        "id": event.id,
        "kind": event.kind,
        "message": event.message,
        "data": event.data,
        "created_at": iso(event.created_at),
    }


def artifact_dict(artifact: Artifact, job_id: int) -> dict:
    """One file a job produced, with where to download it."""
    return {
        "name": artifact.name,
        "url": url_for("api.download_job_artifact", job_id=job_id, name=artifact.name),
        "size_bytes": artifact.size_bytes,
        "sha256": artifact.sha256,
        "created_at": iso(artifact.created_at),
    }


def webhook_dict(endpoint: WebhookEndpoint) -> dict:
    """A webhook endpoint, never its secret."""
    return {"id": endpoint.id, "url": endpoint.url, "events": endpoint.events, "enabled": endpoint.enabled,
            "consecutive_failures": endpoint.consecutive_failures, "disabled_reason": endpoint.disabled_reason,
            "created_at": iso(endpoint.created_at), "updated_at": iso(endpoint.updated_at)}


def delivery_dict(delivery: WebhookDelivery) -> dict:
    """One delivery of an event to an endpoint and how its attempts went."""
    return {"id": delivery.id, "event_id": delivery.event_id, "event_type": delivery.event_type,
            "status": delivery.status, "attempts": delivery.attempts, "response_status": delivery.response_status,
            "latency_ms": delivery.latency_ms, "response_excerpt": delivery.response_excerpt,
            "next_attempt_at": iso(delivery.next_attempt_at) if delivery.status == "retrying" else None,
            "created_at": iso(delivery.created_at), "delivered_at": iso(delivery.delivered_at)}


SAMPLE_KEYS = ("messages", "reference", "base", "tuned", "base_tokens", "tuned_tokens", "base_seconds",
               "tuned_seconds")


def sample_dict(sample: dict) -> dict:
    """One sample: the prompt's messages, the reference answer (or null), the base and the tuned answers."""
    return {key: sample.get(key) for key in SAMPLE_KEYS}


def checkpoint_dict(checkpoint: Checkpoint, job_id: int) -> dict:
    """A kept checkpoint: its step, metrics, and the artifact folder of its adapter with a zip download."""
    folder = checkpoint.artifact
    url = url_for("api.download_job_archive", job_id=job_id, prefix=f"{folder}/") if folder else None
    return {"step": checkpoint.step, "metrics": checkpoint.metrics or {},
            "artifact": {"name": folder, "url": url} if folder else None}
