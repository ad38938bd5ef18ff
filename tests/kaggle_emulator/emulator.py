"""KaggleEmulator: start a local Kaggle, send the real client to it, steer it and look inside it from a test."""
from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from kagglesdk.datasets.types.dataset_enums import DatabundleVersionStatus
from kagglesdk.kernels.types.kernels_enums import KernelWorkerStatus

from tests.kaggle_emulator.server import EmulatorServer
from tests.kaggle_emulator.state import KaggleState

DEFAULT_ACCOUNTS = {"alice": "alice-key"}


@dataclass
class Fault:
    """A failure to inject into the next `remaining` calls of a method: an HTTP status, or a dropped connection
    before the call is served ("drop") or after it was served but before it is answered ("drop_after")."""

    method: str
    kind: str
    status: int
    remaining: int


class KaggleEmulator:
    """A Kaggle API on a free port of 127.0.0.1 that really runs pushed kernels; use it as a context manager.

    Point the client at it with the variables of client_env(). Methods are named as in kagglesdk
    (SaveKernel, GetKernelSessionStatus, CreateDataset…), plus UploadBlob, DownloadOutput and LogsStream.
    """

    def __init__(self, root: Path, accounts: dict[str, str] | None = None):
        self.state = KaggleState(root, accounts or DEFAULT_ACCOUNTS)
        self.stopping = False
        self._faults: list[Fault] = []
        self._calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server: EmulatorServer | None = None

    def __enter__(self) -> KaggleEmulator:
        """Start serving."""
        self._server = EmulatorServer(self)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name="kaggle-emulator", daemon=True).start()
        return self

    def __exit__(self, *exc_info) -> None:
        """Stop every session's process, then the server."""
        self.stopping = True
        with self.state.changed:
            sessions = list(self.state.sessions.values())
            for session in sessions:
                if not session.final:
                    session.stop(KernelWorkerStatus.ERROR, "The emulator stopped.")
        for session in sessions:
            session.wait_stopped()
        self._server.shutdown()
        self._server.server_close()

    # -- reaching it --------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The emulator's address, which the client uses as its HTTP proxy."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def client_env(self, environment: str = "LOCALHOST") -> dict[str, str]:
        """Variables that send the client here: LOCALHOST for KaggleApi, TEST for kagglesdk's own KaggleClient.

        Set them only where the client runs: a child process's environment, or a test's monkeypatch.
        """
        return {"KAGGLE_API_ENVIRONMENT": environment, "HTTP_PROXY": self.url, "http_proxy": self.url,
                "NO_PROXY": "", "no_proxy": ""}

    def add_token(self, token: str, username: str) -> None:
        """Accept an access token (KAGGLE_API_TOKEN) for an account."""
        with self.state.changed:
            self.state.tokens[token] = username

    # -- failures and timing ------------------------------------------------------------------------------------

    def fail(self, method: str, status: int = 503, times: int = 1) -> None:
        """Answer the next `times` calls of method with an HTTP error status."""
        with self._lock:
            self._faults.append(Fault(method, "status", status, times))

    def drop(self, method: str, times: int = 1, after_processing: bool = False) -> None:
        """Close the connection of the next `times` calls of method, before serving them or after (answer lost)."""
        with self._lock:
            self._faults.append(Fault(method, "drop_after" if after_processing else "drop", 0, times))

    def take_fault(self, method: str) -> Fault | None:
        """Count a call of method and return the fault it must suffer, if any (the server's side)."""
        with self._lock:
            self._calls[method] += 1
            for fault in self._faults:
                if fault.method == method and fault.remaining > 0:
                    fault.remaining -= 1
                    return fault
        return None

    def calls(self, method: str) -> int:
        """How many calls of method arrived, failed ones included."""
        with self._lock:
            return self._calls[method]

    def hold_queue(self, hold: bool = True) -> None:
        """Keep kernels pushed from now on queued until release()."""
        with self.state.changed:
            self.state.hold_queue = hold

    def release(self, slug: str | None = None) -> None:
        """Let held sessions (of one kernel, or all) start."""
        with self.state.changed:
            for (_, kernel_slug), kernel in self.state.kernels.items():
                for session in kernel.sessions:
                    session.held = session.held and slug not in (None, kernel_slug)
            self.state.start_queued()

    def hold_datasets(self, hold: bool = True) -> None:
        """Keep dataset versions created from now on processing until release_datasets()."""
        with self.state.changed:
            self.state.hold_datasets = hold

    def release_datasets(self) -> None:
        """Finish processing every dataset version."""
        with self.state.changed:
            for dataset in self.state.datasets.values():
                for version in dataset.versions:
                    version.status = DatabundleVersionStatus.READY

    def fail_session(self, slug: str, message: str) -> None:
        """End the kernel's latest session as Kaggle does when it kills one (time limit, out of memory)."""
        with self.state.changed:
            self._kernel(slug).sessions[-1].stop(KernelWorkerStatus.ERROR, message)

    def set_quota(self, used_hours: float, limit_hours: float, account: str | None = None) -> None:
        """An account's GPU quota this week (every account's without one)."""
        with self.state.changed:
            quota = (timedelta(hours=used_hours), timedelta(hours=limit_hours))
            if account is None:
                self.state.quota = quota
            else:
                self.state.quotas[account] = quota

    def limit_sessions(self, seconds: float) -> None:
        """End every session started from now on after this many seconds (Kaggle's is 12 hours)."""
        with self.state.changed:
            self.state.session_seconds = seconds

    def add_model(self, handle: str, version: int, folder: Path) -> None:
        """Publish a Kaggle Model variation, owner/model/framework/variation, whose files are folder's."""
        owner, model, framework, variation = handle.split("/")
        with self.state.changed:
            self.state.models[(owner, model, framework, variation)] = (version, folder)

    # -- looking inside -----------------------------------------------------------------------------------------

    def pushes(self, slug: str) -> int:
        """How many versions of a kernel were pushed."""
        with self.state.changed:
            return self.state.pushes[slug]

    def kernel(self, slug: str) -> dict:
        """A kernel as the emulator holds it: title, push metadata, its latest session's state, outputs and log."""
        with self.state.changed:
            kernel = self._kernel(slug)
            session = kernel.sessions[-1]
            return {"owner": kernel.owner, "slug": kernel.slug, "title": kernel.title, "metadata": kernel.metadata,
                    "versions": len(kernel.sessions), "session_id": session.id,
                    "state": session.status.name.lower(), "outputs": session.outputs() if session.final else [],
                    "log": "".join(event["data"] for event in session.events)}

    def kernels(self) -> list[str]:
        """The slugs of every kernel."""
        with self.state.changed:
            return sorted(slug for _, slug in self.state.kernels)

    def dataset(self, slug: str) -> dict:
        """A dataset as the emulator holds it, with its versions' files, descriptions and states."""
        with self.state.changed:
            [dataset] = [d for d in self.state.datasets.values() if d.slug == slug]
            versions = [{"number": v.number, "files": sorted(v.files), "description": v.description,
                         "status": v.status.name.lower()} for v in dataset.versions]
            return {"owner": dataset.owner, "slug": dataset.slug, "title": dataset.title,
                    "license": dataset.license_name, "is_private": dataset.is_private, "versions": versions}

    def datasets(self) -> list[str]:
        """The slugs of every dataset."""
        with self.state.changed:
            return sorted(slug for _, slug in self.state.datasets)

    @property
    def peak_running(self) -> int:
        """The most GPU sessions that ever ran at once."""
        with self.state.changed:
            return self.state.peak_running

    def peak_running_of(self, account: str) -> int:
        """The most GPU sessions of one account that ever ran at once."""
        with self.state.changed:
            return self.state.peak_by_account[account]

    def kernels_of(self, account: str) -> list[str]:
        """The slugs of the account's kernels (whose a kernel is: the account that pushed it)."""
        with self.state.changed:
            return sorted(slug for owner, slug in self.state.kernels if owner == account)

    def _kernel(self, slug: str):
        """The kernel of a slug, whoever owns it."""
        [kernel] = [k for (_, kernel_slug), k in self.state.kernels.items() if kernel_slug == slug]
        return kernel
