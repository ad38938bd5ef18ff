"""Turn the training program's output into job progress: `@@studio` lines become metrics, the rest log lines."""
from __future__ import annotations

from collections.abc import Callable

from app.jobs.events import add_events
from app.models import Job, utcnow
from trainer.protocol import parse_progress_line

# Progress keys copied into the job's latest metrics.
METRIC_KEYS = ("loss", "eval_loss", "eval_accuracy", "eval_perplexity", "learning_rate", "tokens_per_second",
               "eta_seconds")
# Beyond this many log lines (JOB_LOG_EVENT_CAP) a job keeps only its progress as events: a chatty run must not
# fill the database; the lines past it go to the overflow (compressed log artifacts, app/jobs/log_overflow.py).
MAX_LOG_EVENTS = 20_000


# Events that carry a step: a run resumed from a checkpoint reports again the steps after it, which the job
# recorded already (with the same values: resume is exact), and a replayed progress.jsonl repeats what was read;
# those are skipped, never stored twice.
STEPPED = ("start", "progress", "eval", "checkpoint", "done")


def apply_output(job: Job, lines: list[str], logged_so_far: int = 0, cap: int = MAX_LOG_EVENTS,
                 overflow: Callable[[list[str]], None] | None = None) -> int:
    """Record a batch of output lines on the job (one insert, one update); returns log lines kept as events.
    Log lines past `cap` go to overflow (dropped without one); metric points are always kept."""
    events, kept, beyond = [], 0, []
    changes: dict = {}
    reported = dict((job.metrics or {}).get("reported_steps") or {})
    for line in lines:
        progress = parse_progress_line(line)
        if progress is not None and _reported_before(progress, reported):
            continue
        if progress is not None:
            events.append(_event_of(progress))
            changes.update(_job_changes(job, progress, changes))
        elif line.strip() and logged_so_far + kept < cap:
            events.append(("log", line.rstrip("\n"), None))
            kept += 1
        elif line.strip():
            beyond.append(line.rstrip("\n"))
    add_events(job, events)
    if beyond and overflow is not None:
        overflow(beyond)
    if reported != ((job.metrics or {}).get("reported_steps") or {}):
        changes["metrics"] = {**(changes.get("metrics") or job.metrics or {}), "reported_steps": reported}
    if changes:
        changes["updated_at"] = utcnow()
        Job.update(changes).where(Job.id == job.id).execute()
        for name, value in changes.items():
            setattr(job, name, value)
    return kept


def _reported_before(progress: dict, reported: dict) -> bool:
    """Whether this point of a stepped series was recorded already; records it as reported otherwise."""
    kind, step = progress["type"], progress.get("step")
    if kind not in STEPPED or not isinstance(step, int):
        return False
    if step <= reported.get(kind, -1):
        return True
    reported[kind] = step
    return False


def _event_of(progress: dict) -> tuple[str, str, dict]:
    """The event recording one progress line: metric points for progress/eval, log otherwise."""
    kind = "metric" if progress["type"] in ("progress", "eval") else "log"
    data = {key: value for key, value in progress.items() if value is not None}
    return kind, _describe(progress), data


def _describe(progress: dict) -> str:
    """A short human line for a progress event."""
    kind, step, total = progress["type"], progress.get("step"), progress.get("total_steps")
    where = f"step {step}/{total}" if step is not None and total else ""
    if kind == "error":
        return f"error: {progress.get('message') or 'training failed'}"
    if kind == "eval" and progress.get("eval_loss") is not None:
        return f"eval {where}: eval_loss {progress['eval_loss']:.4f}"
    if kind == "progress" and progress.get("loss") is not None:
        return f"{where}: loss {progress['loss']:.4f}"
    return f"{kind} {where}".strip()


def _job_changes(job: Job, progress: dict, pending: dict) -> dict:
    """The job fields one progress line updates."""
    changes = {}
    for name in ("step", "total_steps", "epoch"):
        if progress.get(name) is not None:
            changes[name] = progress[name]
    metrics = dict(pending.get("metrics") or job.metrics or {})
    metrics.update({key: progress[key] for key in METRIC_KEYS if progress.get(key) is not None})
    if progress["type"] == "error" and progress.get("message"):
        metrics["error_message"] = progress["message"]
    if metrics != (job.metrics or {}):
        changes["metrics"] = metrics
    return changes


def last_error_message(job: Job) -> str | None:
    """The training program's own explanation of its failure, when it gave one."""
    return (job.metrics or {}).get("error_message")
