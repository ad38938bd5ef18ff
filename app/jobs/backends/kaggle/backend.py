"""The Kaggle backend: a private dataset and a private GPU script kernel per job, through the official client.

docs/KAGGLE.md describes the slugs, the backend_ref it keeps, how each call stays idempotent, and what the
Kaggle API cannot do (cancel a running session).
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from datetime import UTC
from functools import cached_property
from pathlib import Path

from requests import HTTPError

from app import catalog, counters
from app.jobs.backends import BackendError, CancelOutcome, PollResult, TrainingInputs, register
from app.jobs.backends.kaggle import bootstrap, client, kernels
from app.settings import Settings

log = logging.getLogger(__name__)

CONTENT_HASH = re.compile(r"sha256 ([0-9a-f]{64})")
STATES = {
    "QUEUED": "queued", "NEW_SCRIPT": "queued", "RUNNING": "running", "COMPLETE": "complete", "ERROR": "error",
    "CANCEL_REQUESTED": "cancelled", "CANCEL_ACKNOWLEDGED": "cancelled",
}
# The new log events one poll takes at most; the rest wait for the next poll (a few seconds later).
LOG_EVENTS_PER_POLL = 5000
NOT_FOUND = (403, 404)  # Kaggle answers 403 ("permission denied") for a kernel or dataset that does not exist
CANCEL_MESSAGE = (
    "The Studio stopped following this job, but the Kaggle session runs on until it ends: Kaggle's API cannot "
    "stop a running session (cancelling needs a session id that the API never returns). To free the GPU now, "
    "stop it by hand on kaggle.com under Your Work → Code."
)


@dataclass(frozen=True)
class Patience:
    """How long the backend waits on Kaggle: retries, timeouts, the live log and dataset processing."""

    attempts: int = 4
    backoff_seconds: float = 1.0
    timeout: tuple[float, float] = (10.0, 120.0)  # connect, read
    # A live log silent this long has nothing more for this poll (it is also the wait for the log's first byte).
    log_idle_seconds: float = 5.0
    log_budget_seconds: float = 10.0
    dataset_ready_seconds: float = 60.0
    dataset_check_seconds: float = 2.0


# A page must not wait on Kaggle for long: one short attempt.
QUICK_PATIENCE = Patience(attempts=1, timeout=(3.0, 5.0))


@register
class KaggleBackend:
    """Trains on Kaggle's free GPUs: uploads the data as a private dataset, pushes a private script kernel."""

    name = "kaggle"
    label = "Kaggle (free T4 GPU)"
    gpu_gb = catalog.T4_GB
    trains_in_worker = False
    reports_quota = True

    def __init__(self, settings: Settings, redis=None, patience: Patience | None = None):
        self.settings, self.redis = settings, redis
        self.patience = patience or Patience()

    @classmethod
    def settings_problems(cls, settings: Settings) -> list[str]:
        """What production mode refuses: the backend enabled without credentials."""
        if settings.has_kaggle_credentials:
            return []
        return ["KAGGLE_KEY: TRAINING_BACKENDS includes kaggle; set KAGGLE_USERNAME and KAGGLE_KEY, "
                "or KAGGLE_API_TOKEN"]

    def configuration_problems(self) -> list[str]:
        """Missing credentials or a missing client; checked without calling Kaggle."""
        problems = []
        if not self.settings.has_kaggle_credentials:
            problems.append("Kaggle credentials are missing: set KAGGLE_USERNAME and KAGGLE_KEY, or KAGGLE_API_TOKEN.")
        if importlib.util.find_spec("kaggle") is None:
            problems.append("The kaggle package is not installed: pip install -r requirements.txt.")
        return problems

    def max_concurrent(self) -> int | None:
        """KAGGLE_MAX_CONCURRENT sessions at once (Kaggle runs two GPU sessions per account)."""
        return self.settings.kaggle_max_concurrent

    def stops_itself(self, job) -> bool:
        """A remote run never sees the cancel request: the cancel step must act."""
        return False

    # -- the client ---------------------------------------------------------------------------------------------

    @cached_property
    def api(self):
        """The authenticated client for ordinary calls."""
        return self._client(self.patience.timeout)

    @cached_property
    def log_api(self):
        """A client whose reads give up after a short silence, to read a live log without waiting for its end."""
        return self._client((self.patience.timeout[0], self.patience.log_idle_seconds))

    @property
    def owner(self) -> str:
        """The Kaggle account the datasets and kernels belong to."""
        return self.api.get_config_value("username")

    def _client(self, timeout: tuple[float, float]):
        """Configure the kaggle package for this process, then authenticate a client."""
        config_dir = Path(self.settings.kaggle_config_dir or self.settings.data_dir / "kaggle")
        config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Read when kaggle is first imported, which otherwise creates a folder in the home directory (also when
        # the variable is empty, as .env.example leaves it).
        os.environ["KAGGLE_CONFIG_DIR"] = str(config_dir)
        if self.settings.kaggle_api_token:  # the client reads an access token from the environment only
            os.environ["KAGGLE_API_TOKEN"] = self.settings.kaggle_api_token
        credentials = {"username": self.settings.kaggle_username, "key": self.settings.kaggle_key}
        api = client.authenticated_api({k: v for k, v in credentials.items() if v}, config_dir, timeout)
        return client.CountedApi(api, self._count_call)

    def _count_call(self, operation: str):
        """The metrics block around one Kaggle API call (nothing to count into without Redis)."""
        return counters.kaggle_call(self.redis, operation) if self.redis is not None else contextlib.nullcontext()

    def _retrying(self, operation):
        """operation() with the backend's retries; client failures come out as BackendErrors."""
        return client.with_retries(operation, self.patience.attempts, self.patience.backoff_seconds)

    # -- prepare: the dataset -----------------------------------------------------------------------------------

    def prepare(self, inputs: TrainingInputs, ref: dict) -> dict:
        """Create the job's dataset, or a new version of it when the content changed; wait until Kaggle is ready."""
        if ref.get("dataset_sha256") == inputs.dataset_sha256 and ref.get("dataset_version"):
            return {}
        dataset = f"{self._retrying(lambda: self.owner)}/{kernels.dataset_slug(inputs.installation_id, inputs.job_id)}"
        self._retrying(lambda: self._ensure_dataset(inputs, dataset))
        version = self._wait_until_ready(dataset)
        return {"dataset": dataset, "dataset_sha256": inputs.dataset_sha256, "dataset_version": version}

    def _ensure_dataset(self, inputs: TrainingInputs, dataset: str) -> None:
        """Upload the data unless Kaggle already holds this content (its hash is in the dataset's description)."""
        status = self._dataset_status(dataset)
        if status is None:
            self._upload(inputs, dataset, new=True)
        elif self._dataset_sha256(dataset) != inputs.dataset_sha256:
            self._upload(inputs, dataset, new=False)
        else:
            log.info("Kaggle dataset %s already holds %s", dataset, inputs.dataset_sha256)

    def _dataset_status(self, dataset: str) -> dict | None:
        """{"status", "current_version_number"} of a dataset, or None when it does not exist."""
        try:
            return json.loads(self.api.dataset_status(dataset, format="json(status,current_version_number)"))
        except HTTPError as error:
            if error.response is not None and error.response.status_code in NOT_FOUND:
                return None
            raise

    def _dataset_sha256(self, dataset: str) -> str | None:
        """The content hash recorded in the dataset's description."""
        with tempfile.TemporaryDirectory() as folder:
            metadata = json.loads(Path(self.api.dataset_metadata(dataset, folder)).read_text())
        info = metadata.get("info", metadata)  # the client writes the whole response, its info inside
        found = CONTENT_HASH.search(info.get("description") or "")
        return found.group(1) if found else None

    def _upload(self, inputs: TrainingInputs, dataset: str, new: bool) -> None:
        """Upload the data files as a new private dataset or a new version; Kaggle's refusal is permanent."""
        with tempfile.TemporaryDirectory() as folder:
            self._stage_dataset(inputs, dataset, Path(folder))
            if new:
                response = self.api.dataset_create_new(folder, public=False, quiet=True)
            else:
                response = self.api.dataset_create_version(folder, f"sha256 {inputs.dataset_sha256}", quiet=True)
        if response.error and new and self._dataset_status(dataset) is not None:
            # Created meanwhile, by an attempt whose answer was lost: check its content again.
            raise BackendError(f"Kaggle dataset {dataset} appeared meanwhile", transient=True)
        if response.error:
            raise BackendError(f"Kaggle refused the dataset {dataset}: {response.error}")
        log.info("uploaded %s to Kaggle dataset %s", inputs.dataset_sha256, dataset)

    def _stage_dataset(self, inputs: TrainingInputs, dataset: str, folder: Path) -> None:
        """The folder the client uploads: links to the data files and dataset-metadata.json."""
        for path in sorted(inputs.data_dir.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                (folder / path.name).symlink_to(path.resolve())
        (folder / "dataset-metadata.json").write_text(json.dumps(kernels.dataset_metadata(inputs, dataset)))

    def _wait_until_ready(self, dataset: str) -> int:
        """The dataset's version once Kaggle has processed it; transient while it still works on it."""
        deadline = time.monotonic() + self.patience.dataset_ready_seconds
        while True:
            status = self._retrying(lambda: self._dataset_status(dataset)) or {}
            if status.get("status") == "ready":
                return int(status["current_version_number"])
            if status.get("status") == "failed":
                raise BackendError(f"Kaggle could not process the dataset {dataset}; see it on kaggle.com.")
            if time.monotonic() >= deadline:
                raise BackendError(f"Kaggle is still processing the dataset {dataset}", transient=True)
            time.sleep(self.patience.dataset_check_seconds)

    def delete_dataset(self, ref: dict) -> bool:
        """Delete the job's private dataset from Kaggle (the sweeper's opt-in clean-up); False when it is gone."""
        dataset = ref.get("dataset")
        if not dataset or self._retrying(lambda: self._dataset_status(dataset)) is None:
            return False
        owner, slug = dataset.split("/", 1)
        self._retrying(lambda: self.api.dataset_delete(owner, slug, no_confirm=True))
        log.info("deleted Kaggle dataset %s", dataset)
        return True

    # -- submit: the kernel -------------------------------------------------------------------------------------

    def submit(self, inputs: TrainingInputs, ref: dict) -> dict:
        """Push the job's kernel once: a retry finds the kernel it pushed before and pushes nothing."""
        if ref.get("kernel"):
            return {}
        if not ref.get("dataset"):
            raise BackendError("The job's data is not on Kaggle yet: prepare must run before submit.")
        title = kernels.kernel_title(inputs, ref.get("run", 1))
        kernel = f"{self._retrying(lambda: self.owner)}/{kernels.kernel_slug(title)}"
        model = self._retrying(lambda: self._model_instance_version(inputs.model_source))
        version = self._retrying(lambda: self._push_once(inputs, ref["dataset"], model, kernel, title))
        return {"kernel": kernel, "kernel_version": version, "log_events": 0}

    def _model_instance_version(self, model_source: str) -> str | None:
        """owner/model/framework/variation/version of a Kaggle Model source (latest version unless given)."""
        if not model_source.startswith("kaggle:"):
            return None
        handle = model_source.removeprefix("kaggle:")
        if handle.count("/") == 3:
            handle += f"/{self.api.model_instance_get(handle).version_number}"
        if handle.count("/") != 4:
            raise BackendError(f"{model_source} is not kaggle:<owner>/<model>/<framework>/<variation>[/<version>].")
        return handle

    def _push_once(self, inputs: TrainingInputs, dataset: str, model: str | None, kernel: str, title: str):
        """Push the kernel unless Kaggle has it; the version pushed, or None when it was there already."""
        if self._kernel_exists(kernel):
            log.info("Kaggle kernel %s was pushed before; not pushing again", kernel)
            return None
        with tempfile.TemporaryDirectory() as folder:
            self._stage_kernel(inputs, dataset, model, kernel, title, Path(folder))
            response = self.api.kernels_push(folder)
        invalid = [*(response.invalid_dataset_sources or []), *(response.invalid_model_sources or [])]
        if response.error or invalid:
            raise BackendError(f"Kaggle refused the kernel {kernel}: {response.error or 'invalid sources'} "
                               f"{', '.join(invalid)}".strip())
        log.info("pushed Kaggle kernel %s version %s", kernel, response.version_number)
        return response.version_number

    def _kernel_exists(self, kernel: str) -> bool:
        """Whether Kaggle has a session of the kernel (the client re-raises a 403 as a 'wrong slug' ValueError)."""
        try:
            self.api.kernels_status(kernel)
        except Exception as error:
            if client.http_status(error) in NOT_FOUND:
                return False
            raise
        return True

    def _stage_kernel(self, inputs: TrainingInputs, dataset: str, model: str | None, kernel: str, title: str,
                      folder: Path) -> None:
        """The folder the client pushes: the kernel script and kernel-metadata.json."""
        job = {"config": inputs.config, "dataset_slug": dataset.split("/")[1],
               "model_path": model.split("/", 1)[1] if model else None}
        (folder / kernels.KERNEL_FILE).write_text(kernels.kernel_script(job, inputs.training_program.read_bytes()))
        metadata = kernels.kernel_metadata(inputs, dataset, model, kernel, title)
        (folder / "kernel-metadata.json").write_text(json.dumps(metadata))

    # -- poll, outputs, cancel, quota ---------------------------------------------------------------------------

    def poll(self, ref: dict) -> PollResult:
        """The session's state and the log lines printed since ref's cursor; on error, the program's message."""
        kernel = self._versioned_kernel(ref)
        status = self._retrying(lambda: self.api.kernels_status(kernel))
        state = STATES.get(status.status.name, "unknown")
        lines, updates = ([], {}) if state in ("queued", "unknown") else self._new_log_lines(kernel, ref)
        message = status.status.name if state == "unknown" else None
        if state == "error":
            message = (updates.get("kernel_error") or ref.get("kernel_error") or status.failure_message
                       or "The Kaggle session failed without a message; its log is on kaggle.com.")
        return PollResult(state, lines, message, updates)

    def _versioned_kernel(self, ref: dict) -> str:
        """owner/slug[/version] of the job's kernel."""
        if not ref.get("kernel"):
            raise BackendError("The job has no Kaggle kernel: submit has not run.")
        return f"{ref['kernel']}/{ref['kernel_version']}" if ref.get("kernel_version") else ref["kernel"]

    def _new_log_lines(self, kernel: str, ref: dict) -> tuple[list[str], dict]:
        """Log lines after ref's cursor, and the ref updates: the new cursor and any error message seen."""
        seen = int(ref.get("log_events", 0))
        events = self._read_log_events(kernel, seen)
        lines = [line.rstrip("\r") for event in events for line in str(event.get("data", "")).splitlines()]
        found = kernels.error_message(lines)
        return lines, {"log_events": seen + len(events), **({"kernel_error": found} if found else {})}

    def _read_log_events(self, kernel: str, seen: int) -> list[dict]:
        """The log events after the first `seen`, at most LOG_EVENTS_PER_POLL of them, read for at most the log
        budget once the cursor is reached. The stream replays from the start, so the events before the cursor are
        skipped unread and the budget starts after them: a long log still yields its new lines. A running
        session's stream stays open: a read timeout after a short silence ends it."""
        deadline, events, stream = None, [], self.log_api.kernels_logs_stream(kernel)
        try:
            for index, event in enumerate(stream):
                if index < seen:
                    continue
                deadline = deadline or time.monotonic() + self.patience.log_budget_seconds
                events.append(event)
                if len(events) >= LOG_EVENTS_PER_POLL or time.monotonic() > deadline:
                    break
        except client.CLIENT_ERRORS as error:
            log.info("stopped reading the log of Kaggle kernel %s: %s", kernel, error)
        finally:
            stream.close()
        return events

    def train(self, ctx, job):
        """Kaggle runs are submitted and polled, never trained in the worker."""
        raise NotImplementedError("the Kaggle backend does not train in the worker")

    def outputs(self, ctx, job) -> Path:
        """The finished session's outputs, downloaded afresh into the job's run folder."""
        folder = ctx.runs_dir(job.id) / "fetched"
        shutil.rmtree(folder, ignore_errors=True)
        self.fetch_outputs(job.backend_ref or {}, folder)
        return folder

    def fetch_outputs(self, ref: dict, into: Path) -> list[Path]:
        """Download the kernel's outputs and unpack the bootstrap's archive into `into`, with the log as kaggle.log."""
        kernel = self._versioned_kernel(ref)
        session_log = f"{kernel.split('/')[1]}.log"  # where the client saves the session's log
        into.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as folder:
            downloaded = self._retrying(lambda: self.api.kernels_output(kernel, folder, force=True, quiet=True)[0])
            for path in map(Path, downloaded):
                if path.name == bootstrap.OUTPUT_ARCHIVE:
                    with zipfile.ZipFile(path) as archive:  # extract() keeps every member inside `into`
                        archive.extractall(into)
                    continue
                target = into / ("kaggle.log" if path.name == session_log else path.relative_to(folder))
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(path, target)
        return sorted(path for path in into.rglob("*") if path.is_file())

    def cancel(self, ref: dict) -> CancelOutcome:
        """Nothing to stop before the push; after it, Kaggle's API cannot stop the session (see CANCEL_MESSAGE)."""
        if not ref.get("kernel"):
            return CancelOutcome(confirmed=True)
        return CancelOutcome(confirmed=False, message=CANCEL_MESSAGE)

    def quota(self, quick: bool = False) -> dict | None:
        """This week's GPU quota of the account, or None when Kaggle reports none; quick: one short attempt."""
        backend = KaggleBackend(self.settings, self.redis, QUICK_PATIENCE) if quick else self
        statistics = backend._retrying(backend.api.quota_view)
        gpu = statistics.gpu_quota
        if gpu is None or not gpu.total_time_allowed:
            return None
        refresh = statistics.quota_refresh_time
        if refresh is not None and refresh.tzinfo is None:  # kagglesdk returns UTC without a zone
            refresh = refresh.replace(tzinfo=UTC)
        return {"used_hours": _hours(gpu.time_used), "limit_hours": _hours(gpu.total_time_allowed),
                "resets_at": refresh.isoformat() if refresh else None}


def _hours(duration) -> float:
    """A timedelta (None for zero) in hours, to the minute."""
    return round(duration.total_seconds() / 3600, 2) if duration else 0.0
