"""A job's GPU time against its account's weekly quota: the estimate before submitting, the wait when it is short."""
from __future__ import annotations

from app import catalog, gpu_time
from app.jobs import capacity
from app.jobs.context import JobContext
from app.models import Dataset
from trainer.config import Hyperparameters


def estimate_for(base_model: str, method: str, dataset: Dataset | None, hyperparameters: dict, gpus: int = 2
                 ) -> gpu_time.GpuTimeEstimate | None:
    """The run's GPU time on gpus T4s (a Kaggle session's two by default), or None for a model outside the
    catalog."""
    entry = catalog.find(base_model)
    if entry is None or method not in gpu_time.UTILISATION:
        return None
    tokens = gpu_time.trained_tokens(dataset.stats if dataset else None, hyperparameters, Hyperparameters())
    return gpu_time.estimate(entry, method, tokens, gpus)


def quota_left(ctx: JobContext, backend_name: str, owner_id: int) -> float | None:
    """Hours left this week on the account owner's jobs use, or None when the backend keeps no quota or cannot say."""
    if not ctx.backend(backend_name).reports_quota:
        return None
    found = capacity.quota(ctx, backend_name, owner_id) or {}
    if found.get("unknown") or found.get("limit_hours") is None:
        return None
    return round(max(0.0, found["limit_hours"] - found["used_hours"]), 2)


def summary(ctx: JobContext, owner_id: int, backend_name: str, estimate) -> dict | None:
    """The estimate as the API and the form show it, with the quota left and whether it is exceeded."""
    if estimate is None or not ctx.backend(backend_name).reports_quota:
        return None
    left = quota_left(ctx, backend_name, owner_id)
    exceeds = left is not None and estimate.hours > left
    warning = f"This job needs about {estimate.hours:.1f} h of GPU time; your weekly quota has {left:.1f} h left." \
        if exceeds else None
    return {"hours": estimate.hours, "tokens": estimate.tokens, "tokens_per_second": round(estimate.tokens_per_second),
            "gpus": estimate.gpus, "source": estimate.source, "quota_left_hours": left, "exceeds_quota": exceeds,
            "warning": warning}


def quota_wait_reason(ctx: JobContext, job) -> str | None:
    """Why the job waits for next week's quota, or None when what is left covers it."""
    estimate = estimate_for(job.base_model, job.method, job.dataset, job.hyperparameters or {},
                            ctx.backend(job.backend).gpus)
    left = quota_left(ctx, job.backend, job.owner_id)
    if estimate is None or left is None or estimate.hours <= left:
        return None
    return f"your weekly GPU quota has {left:.1f} h left; this job needs about {estimate.hours:.1f} h"
