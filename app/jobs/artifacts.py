"""A job's artifacts: the output files stored in object storage, recorded once each, found by name."""
from __future__ import annotations

import hashlib
from pathlib import Path

from peewee import fn

from app.errors import NotFound
from app.models import Artifact, Job
from app.storage import ObjectStore


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def is_checkpoint(name: str) -> bool:
    """Whether an output file belongs to a checkpoint (kept only while the run is in progress)."""
    return name.startswith("checkpoints/") or "/checkpoint-" in f"/{name}"


def store_artifacts(store: ObjectStore, job: Job, folder: Path) -> int:
    """Upload every output file (checkpoints aside) and record it; re-running replaces, never duplicates."""
    count = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        if is_checkpoint(name):
            continue
        key = f"jobs/{job.id}/artifacts/{name}"
        with path.open("rb") as stream:
            info = store.put(key, stream, length=path.stat().st_size)
        digest = sha256_of(path)
        Artifact.insert(job=job.id, name=name, object_key=key, size_bytes=info.size, sha256=digest).on_conflict(
            conflict_target=[Artifact.job, Artifact.name],
            update={Artifact.object_key: key, Artifact.size_bytes: info.size, Artifact.sha256: digest}).execute()
        count += 1
    recount(job.id)
    return count


def recount(job_id: int) -> None:
    """Set the job's artifact count (what its live polls compare against) to the rows it has now."""
    Job.update(artifact_count=Artifact.select(fn.COUNT(Artifact.id)).where(Artifact.job == job_id)).where(
        Job.id == job_id).execute()


def list_artifacts(job: Job) -> list[Artifact]:
    """The files the job produced, by name."""
    return list(Artifact.select().where(Artifact.job == job.id).order_by(Artifact.name))


def get_artifact(job: Job, name: str) -> Artifact:
    """The job's artifact called name; NotFound when it has none."""
    artifact = Artifact.get_or_none((Artifact.job == job.id) & (Artifact.name == name))
    if artifact is None:
        raise NotFound("artifact not found")
    return artifact
