"""The training backends: the contract between the orchestration and a place that trains, and their registry.

Each backend is one module of this package (or a subpackage whose `backend` module does it) that defines a class
following `Backend` and calls `register()` on it. The orchestrator and the pages ask the registry and the backend
(`get(name)`, `backend.label`, `backend.trains_in_worker`…), never compare names, so a new backend is one module and
one registration.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol

_REGISTRY: dict[str, type] = {}
_SCANNED: list[bool] = []


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
    installation_id: str = "studio"    # this Studio's id (models.Installation), part of the names it makes remotely
    owner_id: int | None = None        # the job's owner: whose account the run uses


@dataclass
class PollResult:
    """Where a submitted run stands, and what it printed since the last poll."""

    state: str                         # "queued" | "running" | "complete" | "paused" | "error" | "cancelled"
    lines: list[str] = field(default_factory=list)   # new log lines, in order (progress lines included)
    message: str | None = None         # for "error": what the user should read
    ref: dict = field(default_factory=dict)          # updates to merge into the job's backend_ref (log cursor…)


@dataclass(frozen=True)
class CancelOutcome:
    """What cancelling did."""

    confirmed: bool                    # the backend stopped the run (or nothing had started)
    message: str = ""                  # shown to the user, e.g. why the remote session runs on; "" for nothing


@dataclass(frozen=True)
class RunOutcome:
    """How a run inside the worker ended: trained, failed, cancelled, handed back, or not started here."""

    result: str                        # "trained" | "failed" | "cancelled" | "handed back" | "busy"
    message: str = ""                  # for "failed": what the user should read


class Backend(Protocol):
    """A place that trains. Runs either happen inside the worker's run step (`trains_in_worker`: `train`) or
    are submitted elsewhere and polled (`prepare`, `submit`, `poll`); every backend answers the rest."""

    name: ClassVar[str]
    label: ClassVar[str]               # how the pages name it
    gpu_gb: ClassVar[float | None]     # the GPU memory a run must fit into; None when unknown (your own machine)
    gpus: ClassVar[int]                # GPUs a run trains on at once, data parallel (a Kaggle session's two T4s)
    trains_in_worker: ClassVar[bool]
    reports_quota: ClassVar[bool]      # whether quota() can say how much GPU time is left

    def __init__(self, settings, redis=None): ...

    @classmethod
    def settings_problems(cls, settings) -> list[str]:
        """What production mode refuses when this backend is enabled, each naming its variable."""

    def configuration_problems(self, owner_id: int | None = None) -> list[str]:
        """Why this backend cannot be used now (missing credentials…), for owner_id's jobs when given (no account
        of theirs to run on); empty when it can."""

    def account_for(self, owner_id: int) -> str | None:
        """The account on the backend a new job of this owner runs on (slots are counted per account); None for
        a backend without accounts."""

    def max_concurrent(self) -> int | None:
        """How many of its runs may be in flight at once per account; None for no cap."""

    def slot_wait_reason(self, ref: dict, cap: int) -> str:
        """Why a job whose account holds cap runs already waits, in its owner's words (ref["account"] names it)."""

    def prepare(self, inputs: TrainingInputs, ref: dict) -> dict:
        """Upload the inputs (idempotent: reuse what is there); returns updates to backend_ref."""

    def submit(self, inputs: TrainingInputs, ref: dict) -> dict:
        """Start the run unless ref shows it was started; returns updates to backend_ref."""

    def poll(self, ref: dict) -> PollResult:
        """The run's state and its new log lines since ref's cursor; "paused" when the session ended at its time
        budget with a checkpoint saved, so that the run goes on in a next session."""

    def continuation(self, ref: dict) -> dict:
        """The backend_ref updates that make the next submit start the next session of a paused run."""

    def train(self, ctx, job) -> RunOutcome:
        """Train the job in this process, from start or from its last checkpoint, to an outcome."""

    def outputs(self, ctx, job) -> Path:
        """The folder holding the finished run's output files (downloaded first when they live elsewhere)."""

    def stops_itself(self, job) -> bool:
        """Whether a live run of the job watches for the cancel request and ends the job by itself."""

    def cancel(self, ref: dict) -> CancelOutcome:
        """Stop the run if the backend can."""

    def quota(self, quick: bool = False, owner_id: int | None = None) -> dict | None:
        """GPU quota of owner_id's account: {"used_hours", "limit_hours", "resets_at"} or None when unknown;
        quick for pages."""


def register(backend_class: type) -> type:
    """Make a backend class known under its name (used as a class decorator)."""
    _REGISTRY[backend_class.name] = backend_class
    return backend_class


def get(name: str) -> type:
    """The backend class called name; KeyError for an unknown one."""
    _discover()
    return _REGISTRY[name]


def names() -> list[str]:
    """Every known backend, in registration order."""
    _discover()
    return list(_REGISTRY)


def _discover() -> None:
    """Import every backend module of this package once, so that each registers its backend (a plug-in scan)."""
    if _SCANNED:
        return
    _SCANNED.append(True)
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        importlib.import_module(f"{__name__}.{module.name}" + (".backend" if module.ispkg else ""))
