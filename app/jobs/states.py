"""Job states and the moves between them; the orchestration stages a job goes through."""
from __future__ import annotations

QUEUED, PREPARING, RUNNING = "queued", "preparing", "running"
SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"

ALL = (QUEUED, PREPARING, RUNNING, SUCCEEDED, FAILED, CANCELLED)
ACTIVE = (QUEUED, PREPARING, RUNNING)
TERMINAL = (SUCCEEDED, FAILED, CANCELLED)

# Anything active may fail or be cancelled; otherwise a job only moves forward.
ALLOWED = {
    QUEUED: {PREPARING, FAILED, CANCELLED},
    PREPARING: {RUNNING, FAILED, CANCELLED},
    RUNNING: {SUCCEEDED, FAILED, CANCELLED},
}

# The orchestration step a job runs next (app/jobs/orchestrator.py): prepare → submit → (run | poll…) →
# collect → finalize, or cancel; done once the job is terminal, or release while a terminal job's remote
# session may still run (it holds its backend's slot until the backend says it ended).
PREPARE, SUBMIT, RUN, POLL, COLLECT, FINALIZE, CANCEL, RELEASE = (
    "prepare", "submit", "run", "poll", "collect", "finalize", "cancel", "release")
DONE = "done"
STAGES = (PREPARE, SUBMIT, RUN, POLL, COLLECT, FINALIZE, CANCEL, RELEASE)


def can_move(current: str, target: str) -> bool:
    """Whether a job in state current may move to target."""
    return target in ALLOWED.get(current, ())
