"""Generating a completion in the playground worker: memory check, the model kept warm, tokens saved as they come."""
from __future__ import annotations

import logging
import time
from pathlib import Path

from app import catalog, faults
from app.jobs.context import JobContext
from app.jobs.judging import job_adapter
from app.models import Artifact, Completion, Job, utcnow

SAVE_EVERY_SECONDS = 0.1  # how often the text so far is written for the page and the API to read
MEMORY_HEADROOM = 1.3  # activations, the KV cache and the framework on top of the weights
FOLDERS = {"lora": "adapter", "qlora": "adapter", "full": "model"}

log = logging.getLogger(__name__)


def model_folder(ctx: JobContext, job: Job) -> Path:
    """The job's adapter (or full model) files on this worker's disk, downloaded once."""
    prefix = f"{FOLDERS[job_adapter(job)]}/"
    folder = ctx.settings.data_dir / "playground" / f"job-{job.id}"
    for artifact in Artifact.select().where((Artifact.job == job.id) & Artifact.name.startswith(prefix)):
        target = folder / artifact.name[len(prefix):]
        if target.is_file() and target.stat().st_size == artifact.size_bytes:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        with partial.open("wb") as out, ctx.store.iter_chunks(artifact.object_key) as chunks:
            for chunk in chunks:
                out.write(chunk)
        partial.replace(target)
    return folder


def memory_refusal(job: Job, engine, budget_gb: float) -> str | None:
    """Why the model cannot be loaded on this worker (its estimate exceeds the free memory or budget), or None."""
    entry = catalog.find(job.base_model)
    if entry is None:
        return None
    needed = entry.parameters * engine.bytes_per_parameter() * MEMORY_HEADROOM
    free = min(engine.free_memory_bytes(), budget_gb * 1e9 if budget_gb else float("inf"))
    if needed <= free:
        return None
    return (f"{job.base_model} needs about {needed / 1e9:.1f} GB to answer here, but this worker has "
            f"{free / 1e9:.1f} GB free. The samples on the job page were generated on the training GPU.")


class TextSaver:
    """Saves the answer so far on the completion row (at most every SAVE_EVERY_SECONDS) and the first token's time."""

    def __init__(self, completion: Completion, started: float, redis):
        """Save onto completion, timing from started (redis: where a test may hold the first saved text)."""
        self.completion, self.started, self.saved_at, self.redis = completion, started, 0.0, redis

    def __call__(self, text: str, tokens: int) -> None:
        """A new token arrived."""
        now = time.perf_counter()
        fields = {}
        if self.completion.first_token_seconds is None:
            self.completion.first_token_seconds = fields["first_token_seconds"] = round(now - self.started, 4)
        if fields or now - self.saved_at >= SAVE_EVERY_SECONDS:
            Completion.update(text=storable(text), tokens=tokens, **fields).where(
                Completion.id == self.completion.id).execute()
            self.saved_at = now
            faults.hold("playground.first_text", self.redis)  # a test looks at an answer being written


def finish(completion: Completion, status: str, **fields) -> str:
    """End the completion with status."""
    Completion.update(status=status, finished_at=utcnow(), **fields).where(Completion.id == completion.id).execute()
    return status


def run_completion(ctx: JobContext, completion_id: int, engine, warm) -> str:
    """Generate one queued completion with engine (trainer.serving), keeping models in warm; its final status."""
    completion = Completion.get_or_none(Completion.id == completion_id)
    if completion is None or completion.status != "queued":
        return "nothing to do"
    Completion.update(status="running").where(Completion.id == completion.id).execute()
    job = completion.job
    started = time.perf_counter()
    try:
        if job.id not in warm.loaded and (refusal := memory_refusal(job, engine, ctx.settings.playground_memory_gb)):
            return finish(completion, "failed", error=refusal)
        entry = catalog.find(job.base_model)
        loaded, cold = warm.get(job.id, entry.hub_id if entry else job.base_model, model_folder(ctx, job),
                                job_adapter(job) != "full")
        if cold:
            log.info("loaded the model of job %s for the playground in %.2f s", job.id, time.perf_counter() - started)
        text, tokens = engine.complete(loaded, completion.messages, completion.max_tokens, completion.temperature,
                                       completion.adapter, TextSaver(completion, started, ctx.redis))
    except Exception as error:  # the user sees why; the details stay in the worker's log
        log.exception("completion %s failed", completion_id)
        return finish(completion, "failed", error=f"Generation failed: {type(error).__name__}: {error}")
    return finish(completion, "succeeded", text=storable(text), tokens=tokens)


def storable(text: str) -> str:
    """The text with NUL characters shown as U+FFFD: a model may emit them, and PostgreSQL text cannot hold them."""
    return text.replace("\x00", "\ufffd")
