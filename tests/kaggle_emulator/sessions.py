"""Kernel sessions of the emulator: the pushed script really runs as a subprocess, its output becomes the log."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from kagglesdk.kernels.types.kernels_enums import KernelWorkerStatus

# Kaggle serves at most this many files of a session's output.
MAX_OUTPUT_FILES = 500
FINAL = (KernelWorkerStatus.COMPLETE, KernelWorkerStatus.ERROR, KernelWorkerStatus.CANCEL_ACKNOWLEDGED)


@dataclass
class Session:
    """One run of one kernel version: its folders, state, log events and process."""

    id: int
    version: int
    folder: Path
    script: str
    gpu: bool
    held: bool
    changed: threading.Condition
    status: KernelWorkerStatus = KernelWorkerStatus.QUEUED
    failure_message: str = ""
    events: list[dict] = field(default_factory=list)
    process: subprocess.Popen | None = None
    stop_reason: KernelWorkerStatus | None = None
    started_at: float | None = None
    owner: str = ""                    # the account whose kernel this is
    time_limit: float | None = None    # seconds until Kaggle ends the session, as it does after 12 hours

    @property
    def input_dir(self) -> Path:
        """What the kernel finds under /kaggle/input."""
        return self.folder / "input"

    @property
    def working_dir(self) -> Path:
        """The kernel's /kaggle/working: its outputs."""
        return self.folder / "working"

    @property
    def final(self) -> bool:
        """Whether the session has ended."""
        return self.status in FINAL

    def start(self) -> None:
        """Run the script with Kaggle's folders pointed into the session's own; the caller holds `changed`."""
        self.working_dir.mkdir(parents=True, exist_ok=True)
        (self.folder / "script.py").write_text(self.script)
        self.status, self.started_at = KernelWorkerStatus.RUNNING, time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, str(self.folder / "script.py")], cwd=self.working_dir, env=self._environment(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        readers = [threading.Thread(target=self._read, args=(stream, name), daemon=True)
                   for stream, name in ((self.process.stdout, "stdout"), (self.process.stderr, "stderr"))]
        for reader in readers:
            reader.start()
        threading.Thread(target=self._finish, args=(readers,), daemon=True).start()
        if self.time_limit:
            timer = threading.Timer(self.time_limit, self._time_is_up)
            timer.daemon = True
            timer.start()

    def _time_is_up(self) -> None:
        """End a session still running at its time limit, as Kaggle does."""
        with self.changed:
            if not self.final:
                self.stop(KernelWorkerStatus.ERROR, "Your notebook was stopped because it exceeded the max allowed "
                                                    "execution duration.")

    def _environment(self) -> dict[str, str]:
        """The test's environment without proxies or Kaggle credentials, plus the kernel's folders."""
        env = {key: value for key, value in os.environ.items()
               if not key.lower().endswith("_proxy") and not key.startswith("KAGGLE_")}
        return {**env, "KAGGLE_INPUT_DIR": str(self.input_dir), "KAGGLE_WORKING_DIR": str(self.working_dir),
                "KAGGLE_KERNEL_RUN_TYPE": "Batch", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}

    def _read(self, stream, name: str) -> None:
        """Append each line of one output stream to the log, as Kaggle's log events."""
        for line in stream:
            with self.changed:
                self.events.append({"stream_name": name, "time": round(time.monotonic() - self.started_at, 3),
                                    "data": line})
                self.changed.notify_all()

    def _finish(self, readers: list[threading.Thread]) -> None:
        """Once the process ended and its output is all in the log, settle the final state."""
        returncode = self.process.wait()
        for reader in readers:
            reader.join()
        with self.changed:
            if self.stop_reason is not None:
                self.status = self.stop_reason
            elif returncode == 0:
                self.status = KernelWorkerStatus.COMPLETE
            else:
                self.status = KernelWorkerStatus.ERROR
                self.failure_message = f"Your notebook exited with status {returncode}."
            self.changed.notify_all()

    def stop(self, reason: KernelWorkerStatus, message: str = "") -> None:
        """End the session as Kaggle would on a cancel or a failure of its own; the caller holds `changed`."""
        self.failure_message = message
        if self.process is None or self.process.poll() is not None:
            self.status = reason
            self.changed.notify_all()
            return
        self.stop_reason = reason
        if reason == KernelWorkerStatus.CANCEL_ACKNOWLEDGED:
            self.status = KernelWorkerStatus.CANCEL_REQUESTED
        with contextlib.suppress(ProcessLookupError):  # the group's processes may all be gone already
            os.killpg(self.process.pid, signal.SIGKILL)  # the script's children (the training program) too

    def wait_stopped(self, timeout: float = 30) -> None:
        """Wait for the process to be gone (at the emulator's shutdown)."""
        if self.process is not None:
            self.process.wait(timeout=timeout)

    def outputs(self) -> list[str]:
        """The output files, as relative paths, the first MAX_OUTPUT_FILES only: Kaggle does not serve more."""
        if not self.working_dir.is_dir():
            return []
        files = sorted(path.relative_to(self.working_dir).as_posix()
                       for path in self.working_dir.rglob("*") if path.is_file())
        return files[:MAX_OUTPUT_FILES]
