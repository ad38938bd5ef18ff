"""The contract between the job orchestration and a place that trains: Kaggle or this machine."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class BackendError(Exception):
    """A backend call failed; `transient` ones are retried with backoff, the others fail the job."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.message = message
        self.transient = transient


@dataclass(frozen=True)
class TrainingInputs:
    """Everything a backend needs to start a run, as plain values (no models, no Flask)."""

    job_id: int
    config: dict                       # the training program's config JSON (see docs/TRAINING.md)
    data_dir: Path                     # a local folder holding config["train_file"] (and validation_file)
    dataset_sha256: str                # content hash of the data files, to reuse uploads while unchanged
    # "hub" (the run downloads it: needs internet), "builtin", or "kaggle:<owner>/<model>/<framework>/<variation>"
    model_source: str
    training_program: Path             # the training program's bundle (trainer/bundle.py)


@dataclass
class PollResult:
    """Where a submitted run stands, and what it printed since the last poll."""

    state: str                         # "queued" | "running" | "complete" | "error" | "cancelled"
    lines: list[str] = field(default_factory=list)   # new log lines, in order (progress lines included)
    message: str | None = None         # for "error": what the user should read
    ref: dict = field(default_factory=dict)          # updates to merge into the job's backend_ref (log cursor…)


@dataclass(frozen=True)
class CancelOutcome:
    """What cancelling did."""

    confirmed: bool                    # the backend stopped the run
    message: str                       # shown to the user, e.g. why the remote session runs on


class RemoteBackend(Protocol):
    """A backend whose runs live elsewhere and are polled (Kaggle)."""

    name: str

    def configuration_problems(self) -> list[str]:
        """Why this backend cannot be used now (missing credentials…); empty when it can."""

    def prepare(self, inputs: TrainingInputs, ref: dict) -> dict:
        """Upload the inputs (idempotent: reuse what is there); returns updates to backend_ref."""

    def submit(self, inputs: TrainingInputs, ref: dict) -> dict:
        """Start the run unless ref shows it was started; returns updates to backend_ref."""

    def poll(self, ref: dict) -> PollResult:
        """The run's state and its new log lines since ref's cursor."""

    def fetch_outputs(self, ref: dict, into: Path) -> list[Path]:
        """Download the run's output files into a folder; returns their paths."""

    def cancel(self, ref: dict) -> CancelOutcome:
        """Stop the run if the backend can."""

    def quota(self) -> dict | None:
        """GPU quota: {"used_hours", "limit_hours", "resets_at"} or None when unknown."""
