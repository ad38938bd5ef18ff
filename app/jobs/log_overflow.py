"""A job's log lines past its cap (JOB_LOG_EVENT_CAP): kept as compressed log artifacts, read back a page at a time.

Each batch of lines over the cap becomes one gzip JSONL object with an Artifact row
(`logs/overflow-<first line>-<last line>.jsonl.gz`), so the sweeper keeps it and the user can download it; the
events table keeps the first lines and every metric point, and the chart reads only those. Lines are numbered
from 1 after the cap.
"""
from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable

from app.jobs.artifacts import recount
from app.models import Artifact, Job, utcnow
from app.storage import ObjectStore

PREFIX = "logs/overflow-"


def keeper(store: ObjectStore, job: Job) -> Callable[[list[str]], None]:
    """What apply_output calls with the lines past the cap: they are stored, one compressed artifact per batch."""
    def keep(lines: list[str]) -> None:
        first = stored_lines(job) + 1
        body = gzip.compress("".join(json.dumps({"line": first + index, "time": utcnow().isoformat(),
                                                 "message": text}) + "\n" for index, text in enumerate(lines)
                                     ).encode())
        name = f"{PREFIX}{first:09d}-{first + len(lines) - 1:09d}.jsonl.gz"
        key = f"jobs/{job.id}/artifacts/{name}"
        store.put(key, io.BytesIO(body), length=len(body))
        Artifact.insert(job=job.id, name=name, object_key=key, size_bytes=len(body)).on_conflict_ignore().execute()
        recount(job.id)
    return keep


def _chunks(job: Job) -> list[tuple[int, int, Artifact]]:
    """The job's overflow artifacts with the numbers of their first and last lines, in order."""
    rows = Artifact.select().where((Artifact.job == job.id) & Artifact.name.startswith(PREFIX))
    spans = ((row.name[len(PREFIX):].split(".", 1)[0].split("-"), row) for row in rows)
    return sorted((int(first), int(last), row) for (first, last), row in spans)


def stored_lines(job: Job) -> int:
    """How many lines past the cap the job has stored."""
    chunks = _chunks(job)
    return chunks[-1][1] if chunks else 0


def read_lines(store: ObjectStore, job: Job, after: int, limit: int) -> list[dict]:
    """Up to limit stored lines numbered after `after`, oldest first: only the chunks that hold them are read."""
    found: list[dict] = []
    for _first, last, artifact in _chunks(job):
        if last <= after:
            continue
        data = gzip.decompress(b"".join(store.iter_chunks(artifact.object_key)))
        found += [line for line in map(json.loads, data.splitlines()) if line["line"] > after]
        if len(found) >= limit:
            break
    return found[:limit]
