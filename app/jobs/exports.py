"""Exports of a succeeded job: the merged model (and an Ollama Modelfile), made by a worker and self-checked
against the adapter (trainer/export.py); the result becomes artifacts under export/<format>/. No Flask here."""
from __future__ import annotations

import logging
import shutil

from app import catalog
from app.errors import Conflict, ValidationFailed
from app.jobs import judging, states
from app.jobs.artifacts import store_artifacts
from app.jobs.context import JobContext
from app.jobs.events import add_event
from app.models import Job
from app.playground.runner import model_folder

FORMATS = ("merged", "ollama")
TASK = "workers.tasks.export_job"
FALLBACK_PROMPT = [{"role": "user", "content": "Hello! Who are you?"}]

log = logging.getLogger(__name__)


def check_request(job: Job, payload) -> str:
    """The export format asked for; 409 unless the job succeeded with an adapter, 422 for a bad format."""
    fmt = payload.get("format") if isinstance(payload, dict) else None
    if fmt not in FORMATS:
        raise ValidationFailed("Unknown export format.", details={"format": f"one of {', '.join(FORMATS)}"})
    if job.status != states.SUCCEEDED:
        raise Conflict(f"The job is {job.status}: only a succeeded job can be exported.",
                       details={"status": job.status})
    if judging.job_adapter(job) not in judging.ADAPTER_METHODS:
        raise Conflict("A full fine-tune is already a whole model: download model/ instead.",
                       details={"method": job.method})
    return fmt


def check_prompts(ctx: JobContext, job: Job) -> tuple[list, list]:
    """(prompts answered greedily by both models, whole conversations rendered by both templates)."""
    samples = judging.read_samples(ctx.store, job)
    prompts = [sample["messages"] for sample in samples] or [FALLBACK_PROMPT]
    answered = [[*s["messages"], {"role": "assistant", "content": s["reference"] or s["tuned"] or "-"}]
                for s in samples]
    return prompts, prompts + answered


def run_export(ctx: JobContext, job_id: int, fmt: str, engine, serving) -> str:
    """Merge, self-check and store one export; a mismatch is recorded on the job with the first differing prompt."""
    job = Job.get_by_id(job_id)
    out_root = ctx.runs_dir(job.id) / f"export-{fmt}"
    shutil.rmtree(out_root, ignore_errors=True)
    out = out_root / "export" / fmt
    out.mkdir(parents=True)
    entry = catalog.find(job.base_model)
    loaded = serving.load(entry.hub_id if entry else job.base_model, model_folder(ctx, job), True)
    prompts, conversations = check_prompts(ctx, job)
    try:
        names = engine.export(loaded.model, loaded.tokenizer, prompts, conversations, out, fmt == "ollama")
    except engine.ExportMismatch as error:
        add_event(job, "log", f"export {fmt} failed its self-check: {error}", {"export": fmt, "ok": False})
        return "mismatch"
    finally:
        del loaded
    stored = store_artifacts(ctx.store, job, out_root)
    shutil.rmtree(out_root, ignore_errors=True)
    add_event(job, "log", f"export {fmt} passed its self-check: {len(names)} files under export/{fmt}/",
              {"export": fmt, "ok": True, "files": stored})
    return "exported"
