"""The local backend: the training program runs on this machine as a subprocess of the worker's run step.

The run holds a lease on the job (renewed while it runs), so no second process ever trains the same
job. It stops within seconds on a cancel request, and on a worker's warm shutdown (HANDBACK_SIGNAL from
StudioWorker) it lets the program checkpoint, then hands the job back to the queue to resume.
"""
from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

from app.child_env import training_environment
from app.jobs import inputs, leases, states
from app.jobs.backends import CancelOutcome, RunOutcome, register
from app.jobs.events import move
from app.jobs.progress import apply_output, last_error_message
from app.models import Job

CHECK_EVERY = 1.0
BATCH_SECONDS = 0.5
STOP_GRACE_SECONDS = 20
# The signal StudioWorker sends its work horse when the worker is asked to stop (warm shutdown).
HANDBACK_SIGNAL = signal.SIGUSR1


@register
class LocalBackend:
    """Trains in the worker that runs the job's run step, on this machine's CPU or GPU."""

    name = "local"
    label = "This server (local worker)"
    gpu_gb = None
    trains_in_worker = True
    reports_quota = False

    def __init__(self, settings, redis=None):
        self.settings = settings

    @classmethod
    def settings_problems(cls, settings) -> list[str]:
        """Nothing to configure."""
        return []

    def configuration_problems(self) -> list[str]:
        """Always usable."""
        return []

    def max_concurrent(self) -> int | None:
        """As many as there are workers on the training queue."""
        return None

    def train(self, ctx, job: Job) -> RunOutcome:
        """Train the job here, from its last checkpoint if it has one."""
        return LocalRun(ctx, job).execute()

    def outputs(self, ctx, job: Job) -> Path:
        """The run folder's output, where the program wrote it."""
        return ctx.runs_dir(job.id) / "output"

    def stops_itself(self, job: Job) -> bool:
        """A live run checks the cancel request every second and ends the job itself."""
        return leases.lease_is_live(job)

    def cancel(self, ref: dict) -> CancelOutcome:
        """Nothing runs (a live run cancels itself): nothing to stop."""
        return CancelOutcome(confirmed=True)

    def quota(self, quick: bool = False) -> dict | None:
        """This machine keeps no GPU quota."""
        return None




class LocalRun:
    """One attempt at training a job locally, from start (or resume) to exit."""

    def __init__(self, ctx, job: Job):
        """Prepare to run job."""
        self.ctx, self.job = ctx, job
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.folder = ctx.runs_dir(job.id)
        self.handback = False
        self.logged = 0
        self.lease = timedelta(seconds=ctx.settings.job_lease_seconds)

    def execute(self) -> RunOutcome:
        """Train to the end, a failure, a cancel, or a hand-back; returns which."""
        if not leases.acquire(self.job.id, self.owner, self.lease):
            return RunOutcome("busy", "another process runs it")
        previous = signal.signal(HANDBACK_SIGNAL, self.request_handback)
        try:
            prepared = inputs.gather(self.ctx, self.job)
            move(self.job, states.RUNNING, f"training on {socket.gethostname()}")
            return self.finish(self.supervise(self.start(prepared)))
        finally:
            signal.signal(HANDBACK_SIGNAL, previous)
            leases.release(self.job.id, self.owner)

    def request_handback(self, _signum, _frame) -> None:
        """The worker is stopping: checkpoint and give the job back."""
        self.handback = True

    def start(self, prepared) -> subprocess.Popen:
        """Start the training program in a session of its own."""
        output = self.folder / "output"
        command = [sys.executable, "-u", str(prepared.training_program), "--config", str(self.folder / "config.json"),
                   "--data", str(prepared.data_dir), "--output", str(output)]
        # Our own program with our own paths: nothing here comes from a user.
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,  # noqa: S603
                                bufsize=1, start_new_session=True, cwd=self.folder, env=training_environment())

    def supervise(self, process: subprocess.Popen) -> tuple[int, str]:
        """Relay output until the process ends; stop it on cancel or hand-back. Returns (code, why)."""
        lines: queue.Queue = queue.Queue()
        reader = threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True)
        reader.start()
        reason, last_check, last_renew = "finished", 0.0, time.monotonic()
        while process.poll() is None or reader.is_alive() or not lines.empty():
            self.record(_drain(lines, BATCH_SECONDS))
            now = time.monotonic()
            if now - last_check >= CHECK_EVERY and process.poll() is None and reason == "finished":
                last_check, reason = now, self.stop_reason()
                if reason != "finished":
                    _stop(process)
            if now - last_renew >= self.lease.total_seconds() / 4:
                last_renew = now
                leases.renew(self.job.id, self.owner, self.lease)
        return process.wait(), reason

    def record(self, batch: list[str]) -> None:
        """Apply a batch of output lines to the job."""
        if batch:
            self.logged += apply_output(self.job, batch, self.logged)

    def stop_reason(self) -> str:
        """cancelled, handback, or finished (keep going)."""
        if self.handback:
            return "handback"
        cancel_requested = Job.select(Job.cancel_requested_at).where(Job.id == self.job.id).scalar()
        return "cancelled" if cancel_requested else "finished"

    def finish(self, outcome: tuple[int, str]) -> RunOutcome:
        """How the run ended, from the program's exit status and why it was stopped."""
        code, reason = outcome
        if reason == "cancelled":
            return RunOutcome("cancelled", "cancelled; the training process was stopped")
        if reason == "handback" and code != 0:
            return RunOutcome("handed back", "worker stopping: handed back to the queue to resume from its checkpoint")
        if code != 0:
            return RunOutcome("failed", last_error_message(self.job) or f"The training program exited with {code}.")
        return RunOutcome("trained")


def _pump(stream, lines: queue.Queue) -> None:
    """Copy the process's output lines into the queue until it closes."""
    for line in stream:
        lines.put(line)
    stream.close()


def _drain(lines: queue.Queue, seconds: float) -> list[str]:
    """Lines arriving within seconds (at least one wait, at most 200 lines)."""
    batch, deadline = [], time.monotonic() + seconds
    while len(batch) < 200:
        try:
            batch.append(lines.get(timeout=max(0.0, deadline - time.monotonic())))
        except queue.Empty:
            break
    return batch


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the program's session (it checkpoints and exits); SIGKILL it after a grace period."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=STOP_GRACE_SECONDS)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
