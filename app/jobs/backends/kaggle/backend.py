"""The Kaggle backend: a private dataset and a private GPU script kernel per job, through the official client.

docs/KAGGLE.md describes the slugs, the backend_ref it keeps, how each call stays idempotent, and what the
Kaggle API cannot do (cancel a running session).
"""
from __future__ import annotations

import importlib.util
import logging
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

from app import catalog
from app.jobs.backends import BackendError, CancelOutcome, PollResult, TrainingInputs, register
from app.jobs.backends.kaggle import accounts, bootstrap, client, datasets, kernels
from app.jobs.backends.kaggle.accounts import Credentials
from app.jobs.backends.kaggle.connections import Connections
from app.settings import Settings

log = logging.getLogger(__name__)

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
    gpus = 2  # a GPU session has two T4s; the bootstrap trains on both (data parallel)
    trains_in_worker = False
    reports_quota = True

    def __init__(self, settings: Settings, redis=None, patience: Patience | None = None):
        self.settings, self.redis = settings, redis
        self.patience = patience or Patience()
        self.connections = Connections(settings, redis, self.patience.timeout, self.patience.log_idle_seconds)

    @classmethod
    def settings_problems(cls, settings: Settings) -> list[str]:
        """What production mode refuses: the shared account offered without credentials."""
        if settings.has_kaggle_credentials or not settings.kaggle_shared_account:
            return []
        return ["KAGGLE_KEY: KAGGLE_SHARED_ACCOUNT is true; set KAGGLE_USERNAME and KAGGLE_KEY, "
                "or KAGGLE_API_TOKEN"]

    def configuration_problems(self, owner_id: int | None = None) -> list[str]:
        """A missing client, a shared account without credentials, or (for owner_id) no account to run on;
        checked without calling Kaggle."""
        problems = []
        if self.settings.kaggle_shared_account and not self.settings.has_kaggle_credentials:
            problems.append("KAGGLE_SHARED_ACCOUNT is on but its credentials are missing: set KAGGLE_USERNAME and "
                            "KAGGLE_KEY, or KAGGLE_API_TOKEN.")
        if importlib.util.find_spec("kaggle") is None:
            problems.append("The kaggle package is not installed: pip install -r requirements.txt.")
        if owner_id is not None and not problems and accounts.for_owner(owner_id, self.settings) is None:
            problems.append(accounts.NO_ACCOUNT_MESSAGE)
        return problems

    def account_for(self, owner_id: int) -> str | None:
        """The Kaggle user name a new job of the owner runs on ("shared" for a shared access token's)."""
        credentials = accounts.for_owner(owner_id, self.settings)
        return None if credentials is None else credentials.username or "shared"

    def max_concurrent(self) -> int | None:
        """KAGGLE_MAX_CONCURRENT sessions at once per account (Kaggle runs two GPU sessions per account)."""
        return self.settings.kaggle_max_concurrent

    def slot_wait_reason(self, ref: dict, cap: int) -> str:
        """Why a job waits for a slot, in the words its owner knows."""
        shared = accounts.shared(self.settings)
        on_shared = shared is not None and ref.get("credentials_of") is None and \
            ref.get("account") == (shared.username or "shared")
        whose = "the shared Kaggle account" if on_shared else "your Kaggle account"
        return f"waiting for a free GPU session on {whose} ({ref.get('account')}): {cap} already run there"

    def stops_itself(self, job) -> bool:
        """A remote run never sees the cancel request: the cancel step must act."""
        return False

    # -- the client: the account of the job ---------------------------------------------------------------------

    def _api(self, ref: dict):
        """The client of the account the job's ref names."""
        return self.connections.api(accounts.for_ref(ref, self.settings))

    def verify(self, credentials: Credentials) -> str:
        """Check credentials with one cheap call (the quota; a token's check is Kaggle's own); whose they are."""
        api = self._retrying(lambda: self.connections.api(credentials))
        if not credentials.token:
            self._retrying(api.quota_view)
        return api.get_config_value("username")

    def _account_of(self, inputs: TrainingInputs, ref: dict) -> dict:
        """The ref's account, or the one the owner's new job runs on: {"account", "credentials_of"}."""
        if ref.get("account"):
            return {"account": ref["account"], "credentials_of": ref.get("credentials_of")}
        credentials = accounts.for_owner(inputs.owner_id, self.settings) if inputs.owner_id is not None else \
            accounts.server(self.settings)
        if credentials is None:
            raise BackendError(accounts.NO_ACCOUNT_MESSAGE)
        api = self._retrying(lambda: self.connections.api(credentials))
        return {"account": api.get_config_value("username"), "credentials_of": credentials.owner_id}

    def _retrying(self, operation):
        """operation() with the backend's retries; client failures come out as BackendErrors."""
        return client.with_retries(operation, self.patience.attempts, self.patience.backoff_seconds)

    # -- prepare: the dataset -----------------------------------------------------------------------------------

    def prepare(self, inputs: TrainingInputs, ref: dict) -> dict:
        """On the account of the job: create its dataset, or a new version of it when the content changed; wait
        until Kaggle is ready. The account goes into the ref (slots and quota are counted per account)."""
        if ref.get("dataset_sha256") == inputs.dataset_sha256 and ref.get("dataset_version"):
            return {}
        ref = {**ref, **self._account_of(inputs, ref)}
        dataset = f"{ref['account']}/{kernels.dataset_slug(inputs.installation_id, inputs.job_id)}"
        api = self._api(ref)
        self._retrying(lambda: datasets.ensure_dataset(api, inputs, dataset))
        version = datasets.wait_until_ready(api, dataset, self.patience, self._retrying)
        return {"account": ref["account"], "credentials_of": ref["credentials_of"], "dataset": dataset,
                "dataset_sha256": inputs.dataset_sha256, "dataset_version": version}

    def delete_dataset(self, ref: dict) -> bool:
        """Delete the job's private dataset from Kaggle (the sweeper's opt-in clean-up); False when it is gone."""
        dataset = ref.get("dataset")
        if not dataset or self._retrying(lambda: datasets.dataset_status(self._api(ref), dataset)) is None:
            return False
        owner, slug = dataset.split("/", 1)
        self._retrying(lambda: self._api(ref).dataset_delete(owner, slug, no_confirm=True))
        log.info("deleted Kaggle dataset %s", dataset)
        return True

    # -- submit: the kernel, one version per session ------------------------------------------------------------

    def submit(self, inputs: TrainingInputs, ref: dict) -> dict:
        """Push the kernel version of the job's current session once: a retry finds the version it pushed before
        and pushes nothing. A later session attaches the previous version's output and resumes from it."""
        session = ref.get("session", 1)
        if ref.get("kernel") and ref.get("kernel_session", 1) == session:
            return {}
        if not ref.get("dataset"):
            raise BackendError("The job's data is not on Kaggle yet: prepare must run before submit.")
        api = self._api(ref)
        title = kernels.kernel_title(inputs, ref.get("run", 1))
        kernel = f"{ref.get('account') or api.get_config_value('username')}/{kernels.kernel_slug(title)}"
        model = self._retrying(lambda: self._model_instance_version(api, inputs.model_source))
        push = kernels.Push(inputs, ref["dataset"], model, kernel, title, session, self.time_budget())
        version = self._retrying(lambda: self._push_once(api, push))
        return {"kernel": kernel, "kernel_version": version, "kernel_session": session, "log_events": 0,
                "kernel_error": None}

    def time_budget(self) -> int:
        """The seconds a run may train in one session: Kaggle's limit less the margin to save and archive."""
        return max(1, self.settings.kaggle_session_seconds - self.settings.kaggle_session_margin_seconds)

    def continuation(self, ref: dict) -> dict:
        """The ref updates that start the job's next session (the last one stopped at its time budget)."""
        return {"session": ref.get("session", 1) + 1, "paused_at_step": None}

    def _model_instance_version(self, api, model_source: str) -> str | None:
        """owner/model/framework/variation/version of a Kaggle Model source (latest version unless given)."""
        if not model_source.startswith("kaggle:"):
            return None
        handle = model_source.removeprefix("kaggle:")
        if handle.count("/") == 3:
            handle += f"/{api.model_instance_get(handle).version_number}"
        if handle.count("/") != 4:
            raise BackendError(f"{model_source} is not kaggle:<owner>/<model>/<framework>/<variation>[/<version>].")
        return handle

    def _push_once(self, api, push: kernels.Push) -> int:
        """Push the session's version unless Kaggle has it (the job's kernel gets one version per session)."""
        if self._kernel_exists(api, f"{push.kernel}/{push.session}"):
            log.info("Kaggle kernel %s version %s was pushed before; not pushing again", push.kernel, push.session)
            return push.session
        with tempfile.TemporaryDirectory() as folder:
            kernels.stage_kernel(push, Path(folder))
            response = api.kernels_push(folder)
        invalid = [*(response.invalid_dataset_sources or []), *(response.invalid_model_sources or []),
                   *(getattr(response, "invalid_kernel_sources", None) or [])]
        if response.error or invalid:
            raise BackendError(f"Kaggle refused the kernel {push.kernel}: {response.error or 'invalid sources'} "
                               f"{', '.join(invalid)}".strip())
        log.info("pushed Kaggle kernel %s version %s", push.kernel, response.version_number)
        return response.version_number

    def _kernel_exists(self, api, kernel: str) -> bool:
        """Whether Kaggle has a session of the kernel (the client re-raises a 403 as a 'wrong slug' ValueError)."""
        try:
            api.kernels_status(kernel)
        except Exception as error:
            if client.http_status(error) in NOT_FOUND:
                return False
            raise
        return True

    # -- poll, outputs, cancel, quota ---------------------------------------------------------------------------

    def poll(self, ref: dict) -> PollResult:
        """The session's state and the log lines printed since ref's cursor; on error, the program's message. A
        session that ended at its time budget is "paused": the job goes on in a next one."""
        kernel = self._versioned_kernel(ref)
        status = self._retrying(lambda: self._api(ref).kernels_status(kernel))
        state = STATES.get(status.status.name, "unknown")
        lines, updates = ([], {}) if state in ("queued", "unknown") else self._new_log_lines(kernel, ref)
        message = status.status.name if state == "unknown" else None
        if state == "error":
            message = (updates.get("kernel_error") or ref.get("kernel_error") or status.failure_message
                       or "The Kaggle session failed without a message; its log is on kaggle.com.")
        if state == "complete" and (updates.get("paused_at_step") or ref.get("paused_at_step")):
            state = "paused"
        return PollResult(state, lines, message, updates)

    def _versioned_kernel(self, ref: dict) -> str:
        """owner/slug[/version] of the job's kernel."""
        if not ref.get("kernel"):
            raise BackendError("The job has no Kaggle kernel: submit has not run.")
        return f"{ref['kernel']}/{ref['kernel_version']}" if ref.get("kernel_version") else ref["kernel"]

    def _new_log_lines(self, kernel: str, ref: dict) -> tuple[list[str], dict]:
        """Log lines after ref's cursor, and the ref updates: the new cursor and any error or pause seen."""
        seen = int(ref.get("log_events", 0))
        events = self._read_log_events(self.connections.log_api(accounts.for_ref(ref, self.settings)), kernel, seen)
        lines = [line.rstrip("\r") for event in events for line in str(event.get("data", "")).splitlines()]
        found, paused = kernels.error_message(lines), kernels.paused_step(lines)
        return lines, {"log_events": seen + len(events), **({"kernel_error": found} if found else {}),
                       **({"paused_at_step": paused} if paused else {})}

    def _read_log_events(self, log_api, kernel: str, seen: int) -> list[dict]:
        """The log events after the first `seen`, at most LOG_EVENTS_PER_POLL of them, read for at most the log
        budget once the cursor is reached. The stream replays from the start, so the events before the cursor are
        skipped unread and the budget starts after them: a long log still yields its new lines. A running
        session's stream stays open: a read timeout after a short silence ends it."""
        deadline, events, stream = None, [], log_api.kernels_logs_stream(kernel)
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
        kernel, api = self._versioned_kernel(ref), self._api(ref)
        session_log = f"{kernel.split('/')[1]}.log"  # where the client saves the session's log
        into.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as folder:
            downloaded = self._retrying(lambda: api.kernels_output(kernel, folder, force=True, quiet=True)[0])
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

    def quota(self, quick: bool = False, owner_id: int | None = None) -> dict | None:
        """This week's GPU quota of the owner's account (the shared one without an owner), or None when Kaggle
        reports none or there is no account; quick: one short attempt."""
        credentials = accounts.for_owner(owner_id, self.settings) if owner_id is not None else \
            accounts.server(self.settings)
        if credentials is None:
            return None
        backend = KaggleBackend(self.settings, self.redis, QUICK_PATIENCE) if quick else self
        api = backend._retrying(lambda: backend.connections.api(credentials))
        statistics = backend._retrying(api.quota_view)
        gpu = statistics.gpu_quota
        if gpu is None or not gpu.total_time_allowed:
            return None
        refresh = statistics.quota_refresh_time
        if refresh is not None and refresh.tzinfo is None:  # kagglesdk returns UTC without a zone
            refresh = refresh.replace(tzinfo=UTC)
        return {"account": api.get_config_value("username"), "used_hours": _hours(gpu.time_used),
                "limit_hours": _hours(gpu.total_time_allowed), "resets_at": refresh.isoformat() if refresh else None}


def _hours(duration) -> float:
    """A timedelta (None for zero) in hours, to the minute."""
    return round(duration.total_seconds() / 3600, 2) if duration else 0.0
