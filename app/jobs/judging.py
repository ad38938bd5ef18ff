"""How a job's result is judged and reused: its run options (samples, the job it continues), its checkpoints and
its samples as the training program left them. No Flask here."""
from __future__ import annotations

import json
from pathlib import Path

from app.errors import NotFound
from app.jobs import states
from app.models import Artifact, Checkpoint, Job, User
from app.storage import ObjectStore
from trainer.config import (
    DEFAULT_SAMPLE_COUNT,
    INIT_ADAPTER_PREFIX,
    MAX_SAMPLE_COUNT,
    PREFERENCE_METHODS,
    Hyperparameters,
    conversation_problem,
)

ADAPTER_METHODS = ("lora", "qlora")
SAMPLES_ARTIFACT = "samples.jsonl"
CHECKPOINTS_FILE = "checkpoints.json"
MAX_SAMPLES_BYTES = 4 * 1024 * 1024  # samples.jsonl holds at most 32 short answers: a bigger one is not ours


def run_options(owner: User, request, problems: dict) -> dict:
    """The job's run options from a JobRequest, each problem recorded under its field."""
    options = {"sample_count": sample_count(request.sample_count, problems),
               "sample_prompts": sample_prompts(request.sample_prompts, problems)}
    if request.init_from is not None:
        options["init_from"] = init_source(owner, request, problems)
    return options


def sample_count(value, problems: dict) -> int:
    """sample_count, DEFAULT_SAMPLE_COUNT when not given."""
    if value is None:
        return DEFAULT_SAMPLE_COUNT
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SAMPLE_COUNT:
        problems["sample_count"] = f"Give an integer from 0 to {MAX_SAMPLE_COUNT}."
    return value


def sample_prompts(value, problems: dict) -> list | None:
    """The user's sample prompts as conversations: a plain string is one user message."""
    if value in (None, [], ""):
        return None
    if not isinstance(value, list) or len(value) > MAX_SAMPLE_COUNT:
        problems["sample_prompts"] = f"Give a list of at most {MAX_SAMPLE_COUNT} prompts."
        return None
    conversations = [[{"role": "user", "content": item}] if isinstance(item, str) else item for item in value]
    for index, messages in enumerate(conversations):
        problem = conversation_problem(messages)
        if problem:
            problems[f"sample_prompts[{index}]"] = problem
    return conversations


def init_source(owner: User, request, problems: dict) -> dict | None:
    """The finished job (and checkpoint) the new job starts from, with the artifact folder of its adapter."""
    given = request.init_from
    if not isinstance(given, dict) or set(given) - {"job_id", "checkpoint_step"} or "job_id" not in given:
        problems["init_from"] = 'Send {"job_id": N, "checkpoint_step": S or null}.'
        return None
    try:
        source = Job.get_owned(given["job_id"], owner)
    except NotFound:
        problems["init_from.job_id"] = "No such job among yours."
        return None
    problem = source_problem(source, request)
    if problem:
        problems["init_from.job_id"] = problem
        return None
    artifact = adapter_folder(source, given.get("checkpoint_step"))
    if artifact is None:
        problems["init_from.checkpoint_step"] = "The job kept no adapter at that step; see its checkpoints."
        return None
    return {"job_id": source.id, "checkpoint_step": given.get("checkpoint_step"), "artifact": artifact}


def source_problem(source: Job, request) -> str | None:
    """Why a job cannot be continued by the requested one, or None."""
    if source.status != states.SUCCEEDED:
        return f"The job {source.status}; only a succeeded job can be continued."
    if job_adapter(source) not in ADAPTER_METHODS:
        return "Only a LoRA or QLoRA adapter can be continued; that job trained every weight."
    if adapter_kind(request.method, request.hyperparameters) == "full":
        return ("A full-weights run cannot start from an adapter: continue it with method lora or qlora, or with "
                "dpo or orpo on hyperparameters.adapter lora or qlora.")
    if source.base_model != (request.base_model or "").strip():
        return f"The job trained {source.base_model}: continue it on the same base model."
    return None


def job_adapter(job: Job) -> str:
    """What a job trains: lora, qlora or full (a dpo or orpo job names it in its hyperparameters)."""
    return adapter_kind(job.method, job.hyperparameters)


def adapter_kind(method: str, hyperparameters) -> str:
    """What a job trains: its method, or for a preference method the adapter its hyperparameters name."""
    if method not in PREFERENCE_METHODS:
        return method
    return (hyperparameters if isinstance(hyperparameters, dict) else {}).get("adapter", Hyperparameters.adapter)


def adapter_folder(source: Job, step) -> str | None:
    """The artifact folder of the job's adapter at a kept step (None: the final adapter), when it has one."""
    if step is None:
        folder = "adapter"
    else:
        found = Checkpoint.get_or_none((Checkpoint.job == source.id) & (Checkpoint.step == step))
        folder = found.artifact if found else None
    exists = folder and Artifact.select().where((Artifact.job == source.id)
                                                & Artifact.name.startswith(f"{folder}/")).exists()
    return folder if exists else None


def config_options(job: Job) -> dict:
    """The training program's config keys for the job's run options."""
    options = job.run_options or {}
    return {"sample_count": options.get("sample_count", DEFAULT_SAMPLE_COUNT),
            "sample_prompts": options.get("sample_prompts"), "init_adapter": bool(options.get("init_from"))}


def download_init_adapter(store: ObjectStore, job: Job, data_dir: Path) -> None:
    """The adapter the job continues, as flat prefixed files in its data folder (a Kaggle dataset has no folders)."""
    source = (job.run_options or {}).get("init_from")
    if not source:
        return
    prefix = f"{source['artifact']}/"
    files = Artifact.select().where((Artifact.job == source["job_id"]) & Artifact.name.startswith(prefix))
    for artifact in files:
        target = data_dir / f"{INIT_ADAPTER_PREFIX}{artifact.name[len(prefix):].replace('/', '--')}"
        with target.open("wb") as out, store.iter_chunks(artifact.object_key) as chunks:
            for chunk in chunks:
                out.write(chunk)


def record_checkpoints(job: Job, outputs: Path) -> int:
    """A row per checkpoint the run listed in checkpoints.json (a rerun replaces them); returns how many."""
    listing = outputs / CHECKPOINTS_FILE
    listed = json.loads(listing.read_text()) if listing.is_file() else []
    for entry in listed:
        Checkpoint.insert(job=job.id, step=entry["step"], metrics=entry.get("metrics"),
                          artifact=entry.get("artifact")).on_conflict(
            conflict_target=[Checkpoint.job, Checkpoint.step],
            update={Checkpoint.metrics: entry.get("metrics"), Checkpoint.artifact: entry.get("artifact")}).execute()
    return len(listed)


def list_checkpoints(job: Job) -> list[Checkpoint]:
    """The job's kept checkpoints, by step."""
    return list(Checkpoint.select().where(Checkpoint.job == job.id).order_by(Checkpoint.step))


def read_samples(store: ObjectStore, job: Job) -> list[dict]:
    """The samples the run wrote (empty when it wrote none, or has not finished)."""
    artifact = Artifact.get_or_none((Artifact.job == job.id) & (Artifact.name == SAMPLES_ARTIFACT))
    if artifact is None or artifact.size_bytes > MAX_SAMPLES_BYTES:
        return []
    with store.iter_chunks(artifact.object_key) as chunks:
        text = b"".join(chunks).decode("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]
