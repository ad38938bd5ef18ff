"""The sweeper: removes what nothing needs any more, daily and when the workers start (RQ's scheduler runs it).

Run folders of finished (or vanished) jobs, temporary downloads and half-written uploads older than the grace
period, objects no row points to (once older than the grace period, so an upload or a collect in flight is
never swept), deletions a storage failure interrupted, and, opted in (SWEEP_KAGGLE_DATASETS), the private Kaggle
dataset of a job that has ended. Each part is counted (studio_sweeper_removed_total by kind); one that fails is
logged and counted (studio_sweeper_failures_total) and the others still run. No Flask here.
"""
from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice

from rq import Queue, Repeat
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob

from app import counters
from app.datasets import service as datasets
from app.jobs import states
from app.jobs.context import JobContext
from app.jobs.leases import lease_is_live
from app.models import OBJECT_KEY_COLUMNS, Dataset, Job, utcnow

log = logging.getLogger(__name__)

SWEEP_TASK = "workers.tasks.sweep_leftovers"
# Fixed ids make scheduling idempotent: a second worker start, or a second host, finds the sweep waiting.
DAILY_JOB_ID, START_JOB_ID = "studio-sweeper-daily", "studio-sweeper-at-start"
DAY_SECONDS = 24 * 3600
# RQ repeats a job a given number of times; this many days is "for as long as the Studio runs".
DAILY_REPEATS = 100 * 365
WAITING = ("queued", "scheduled", "deferred", "started")
LOCK_KEY, LOCK_SECONDS = "studio:sweeper-lock", 3600
# Objects live under these prefixes; what models.OBJECT_KEY_COLUMNS names is kept, the rest is an orphan.
PREFIXES = ("datasets/", "jobs/")
BATCH = 500


def schedule_sweeps(queue: Queue) -> None:
    """Enqueue a sweep now and the daily one in a day, unless each is already waiting (fixed RQ job ids)."""
    if not _waiting(queue, START_JOB_ID):
        queue.enqueue(SWEEP_TASK, job_id=START_JOB_ID, result_ttl=DAY_SECONDS, failure_ttl=7 * DAY_SECONDS)
    if not _waiting(queue, DAILY_JOB_ID):
        queue.enqueue_in(timedelta(seconds=DAY_SECONDS), SWEEP_TASK, job_id=DAILY_JOB_ID,
                         repeat=Repeat(times=DAILY_REPEATS, interval=DAY_SECONDS), failure_ttl=7 * DAY_SECONDS)


def _waiting(queue: Queue, job_id: str) -> bool:
    """Whether the RQ job exists and is still to run (or running)."""
    try:
        return RQJob.fetch(job_id, connection=queue.connection).get_status(refresh=False) in WAITING
    except NoSuchJobError:
        return False


def sweep(ctx: JobContext, now: datetime | None = None) -> dict[str, int]:
    """Remove every kind of leftover (one sweep at a time across hosts); how many of each were removed."""
    cutoff = (now or utcnow()) - timedelta(seconds=ctx.settings.sweep_grace_seconds)
    lock = ctx.redis.lock(LOCK_KEY, timeout=LOCK_SECONDS, blocking=False)
    if not lock.acquire():
        log.info("another sweep is running; this one does nothing")
        return {}
    try:
        removed, failed = {}, []
        for kind, part in PARTS.items():
            try:
                removed[kind] = part(ctx, cutoff)
            except Exception:  # one failing part (storage down, Kaggle refusing) must not stop the others
                log.exception("sweeping %s failed", kind)
                failed.append(kind)
        counters.record_sweep(ctx.redis, removed, failed)
    finally:
        lock.release()
    log.info("sweep removed %s", {kind: count for kind, count in removed.items() if count} or "nothing")
    return removed


def sweep_run_folders(ctx: JobContext, cutoff: datetime) -> int:
    """Remove DATA_DIR/runs/<job id> of every job that ended (and holds no live lease) or no longer exists."""
    folders = {int(path.name): path for path in _run_folders(ctx) if path.name.isdigit()}
    jobs = {job.id: job for job in Job.select(Job.id, Job.status, Job.lease_until).where(Job.id.in_(list(folders)))}
    removed = 0
    for job_id, folder in folders.items():
        job = jobs.get(job_id)
        if job is None or (job.status in states.TERMINAL and not lease_is_live(job)):
            shutil.rmtree(folder)
            removed += 1
    return removed


def _run_folders(ctx: JobContext) -> list:
    """The folders under DATA_DIR/runs."""
    runs = ctx.settings.data_dir / "runs"
    return [path for path in runs.iterdir() if path.is_dir()] if runs.is_dir() else []


def sweep_temporary_downloads(ctx: JobContext, cutoff: datetime) -> int:
    """Remove the *.partial files (downloads cut off by a crash) in active jobs' run folders, once stale."""
    removed, stale_before = 0, cutoff.replace(tzinfo=UTC).timestamp()
    for folder in _run_folders(ctx):
        for partial in folder.rglob("*.partial"):
            if partial.is_file() and partial.stat().st_mtime < stale_before:
                partial.unlink(missing_ok=True)
                removed += 1
    return removed


def sweep_partial_uploads(ctx: JobContext, cutoff: datetime) -> int:
    """Discard uploads to the store that were begun before the cutoff and never completed."""
    return ctx.store.remove_incomplete_uploads(older_than=cutoff.replace(tzinfo=UTC))


def sweep_interrupted_deletions(ctx: JobContext, cutoff: datetime) -> int:
    """Finish the deletions a storage failure interrupted (datasets left marked deleting)."""
    interrupted = [row.id for row in Dataset.select(Dataset.id).where(Dataset.status == "deleting")]
    for dataset_id in interrupted:
        datasets.finish_deletion(dataset_id, ctx.store)
    return len(interrupted)


def sweep_orphan_objects(ctx: JobContext, cutoff: datetime) -> int:
    """Delete the objects older than the cutoff that no row points to."""
    removed = 0
    for prefix in PREFIXES:
        old = (info.key for info in ctx.store.list(prefix) if _older(info.last_modified, cutoff))
        for batch in _batches(old):
            for key in set(batch) - _referenced(batch):
                ctx.store.delete(key)
                removed += 1
    return removed


def _older(modified: datetime | None, cutoff: datetime) -> bool:
    """Whether a last-modified time (aware, UTC) is before the naive-UTC cutoff; unknown counts as recent."""
    return modified is not None and modified.astimezone(UTC).replace(tzinfo=None) < cutoff


def _batches(keys: Iterator[str]) -> Iterator[list[str]]:
    """The keys in lists of BATCH, so that references are looked up in a few queries."""
    while batch := list(islice(keys, BATCH)):
        yield batch


def _referenced(keys: list[str]) -> set[str]:
    """Which of the keys a row points to."""
    found = set()
    for model, columns in OBJECT_KEY_COLUMNS:
        for column in columns:
            field = getattr(model, column)
            found.update(row[0] for row in model.select(field).where(field.in_(keys)).tuples())
    return found


def sweep_kaggle_datasets(ctx: JobContext, cutoff: datetime) -> int:
    """Opted in: delete the remote dataset of every job that has ended, once; the job's ref remembers it."""
    if not ctx.settings.sweep_kaggle_datasets:
        return 0
    # Backends that keep a copy of the data elsewhere say so by offering delete_dataset(ref).
    deleters = {name: backend.delete_dataset for name, backend in ctx.enabled_backends().items()
                if hasattr(backend, "delete_dataset")}
    if not deleters:
        return 0
    removed = 0
    for job in Job.select().where(Job.status.in_(states.TERMINAL) & Job.backend.in_(list(deleters))):
        ref = job.backend_ref or {}
        # A session cancelled while it ran may still read its dataset; it is left alone.
        if not ref.get("dataset") or ref.get("dataset_deleted_at") or ref.get("remote_state") in ("queued", "running"):
            continue
        removed += deleters[job.backend](ref)
        Job.update(backend_ref={**ref, "dataset_deleted_at": utcnow().isoformat()}).where(Job.id == job.id).execute()
    return removed


PARTS: dict[str, Callable[[JobContext, datetime], int]] = {
    "run_folders": sweep_run_folders,
    "temporary_downloads": sweep_temporary_downloads,
    "partial_uploads": sweep_partial_uploads,
    "deleted_datasets": sweep_interrupted_deletions,
    "orphan_objects": sweep_orphan_objects,
    "kaggle_datasets": sweep_kaggle_datasets,
}
