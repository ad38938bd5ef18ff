"""The local backend: the training program runs on this machine as a subprocess of the worker's run step.

The run holds a lease on the job, renewed by a heartbeat thread while it runs, so no second process ever
trains the same job; a run that loses its lease stops. The program dies with its supervisor: stopped when
the run step ends in any way, and killed by the kernel (PR_SET_PDEATHSIG) when the supervising process dies.
It stops within seconds on a cancel request, and on a worker's warm shutdown (HANDBACK_SIGNAL from
StudioWorker) it lets the program checkpoint, then hands the job back to the queue to resume.
"""
from __future__ import annotations

import ctypes
import logging
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

from app import faults
from app.child_env import training_environment
from app.db import database
from app.jobs import inputs, leases, log_overflow, states
from app.jobs.backends import CancelOutcome, RunOutcome, register
from app.jobs.events import move
from app.jobs.progress import apply_output, last_error_message
from app.models import Job
from trainer.protocol import PROGRESS_PREFIX

CHECK_EVERY = 1.0
BATCH_SECONDS = 0.5
STOP_GRACE_SECONDS = 20
# The signal StudioWorker sends its work horse when the worker is asked to stop (warm shutdown).
HANDBACK_SIGNAL = signal.SIGUSR1
PR_SET_PDEATHSIG = 1  # linux/prctl.h
# The program writes metrics.json last, once every output is saved (trainer/program.py): a run folder holding it
# has trained to the end, and a run step that was lost after that has nothing left to train.
COMPLETE_MARKER = "metrics.json"
PROGRESS_FILE = "progress.jsonl"

log = logging.getLogger(__name__)


@register
class LocalBackend:
    """Trains in the worker that runs the job's run step, on this machine's CPU or GPU."""

    name = "local"
    label = "This server (local worker)"
    gpu_gb = None
    gpus = 1
    trains_in_worker = True
    # A run can be paused: it checkpoints and stops, and a later run step resumes from that checkpoint.
    pauses = True
    reports_quota = False

    def __init__(self, settings, redis=None):
        self.settings = settings

    @classmethod
    def settings_problems(cls, settings) -> list[str]:
        """Nothing to configure."""
        return []

    def configuration_problems(self, owner_id: int | None = None) -> list[str]:
        """Always usable, by everyone."""
        return []

    def account_for(self, owner_id: int) -> str | None:
        """No accounts here: every job runs on this machine."""
        return None

    def max_concurrent(self) -> int | None:
        """As many as there are workers on the training queue."""
        return None

    def slot_wait_reason(self, ref: dict, cap: int) -> str:
        """Never asked: there is no cap."""
        return f"waiting for one of {cap} training slots"

    def continuation(self, ref: dict) -> dict:
        """Never asked: a local run is never split into sessions."""
        return {}

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

    def quota(self, quick: bool = False, owner_id: int | None = None) -> dict | None:
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
        keeper = LeaseKeeper(self.job.id, self.owner, self.lease)
        previous = signal.signal(HANDBACK_SIGNAL, self.request_handback)
        process = None
        try:
            self.replay_progress_file()
            if (self.folder / "output" / COMPLETE_MARKER).is_file():  # trained before this step was lost: done
                return RunOutcome("trained")
            prepared = inputs.gather(self.ctx, self.job)
            move(self.job, states.RUNNING, f"training on {socket.gethostname()}")
            process = self.start(prepared)
            return self.finish(self.supervise(process, keeper))
        finally:
            if process is not None and process.poll() is None:  # supervise() raised: the program must not outlive it
                _stop(process)
            keeper.stop()
            signal.signal(HANDBACK_SIGNAL, previous)
            leases.release(self.job.id, self.owner)

    def replay_progress_file(self) -> None:
        """Record what an earlier run of this job printed but its supervisor died before reading: the program
        also writes every progress line to progress.jsonl, and points recorded already are skipped."""
        path = self.folder / "output" / PROGRESS_FILE
        if path.is_file():
            with path.open() as lines:
                apply_output(self.job, [PROGRESS_PREFIX + line for line in lines if line.strip()])

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
                                bufsize=1, start_new_session=True, cwd=self.folder, env=training_environment(),
                                preexec_fn=_die_with(os.getpid()))

    def supervise(self, process: subprocess.Popen, keeper: LeaseKeeper) -> tuple[int, str]:
        """Relay output until the process ends; stop it on cancel, hand-back or a lost lease. Returns (code, why)."""
        lines: queue.Queue = queue.Queue()
        reader = threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True)
        reader.start()
        reason, last_check = "finished", 0.0
        while process.poll() is None or reader.is_alive() or not lines.empty():
            self.record(_drain(lines, BATCH_SECONDS))
            now = time.monotonic()
            if now - last_check >= CHECK_EVERY and process.poll() is None and reason == "finished":
                last_check, reason = now, self.stop_reason(keeper)
                if reason != "finished":
                    _stop(process)
        return process.wait(), reason

    def record(self, batch: list[str]) -> None:
        """Apply a batch of output lines to the job."""
        if batch:
            self.logged += apply_output(self.job, batch, self.logged, self.ctx.settings.job_log_event_cap,
                                        log_overflow.keeper(self.ctx.store, self.job))
            if self.job.step:
                faults.hit("run.training")

    def stop_reason(self, keeper: LeaseKeeper) -> str:
        """cancelled, paused, handback, lost (the lease), or finished (keep going)."""
        if keeper.lost.is_set():
            return "lost"
        if self.handback:
            return "handback"
        row = Job.select(Job.cancel_requested_at, Job.paused_at).where(Job.id == self.job.id).first()
        if row is not None and row.cancel_requested_at:
            return "cancelled"
        return "paused" if row is not None and row.paused_at else "finished"

    def finish(self, outcome: tuple[int, str]) -> RunOutcome:
        """How the run ended, from the program's exit status and why it was stopped."""
        code, reason = outcome
        if reason == "lost":
            return RunOutcome("busy", "the run lost its lease (renewals failed): stopped; another run may resume it")
        if reason == "cancelled":
            return RunOutcome("cancelled", "cancelled; the training process was stopped")
        if reason == "paused":
            return RunOutcome("paused", "paused: checkpointed and stopped until it is resumed")
        if reason == "handback" and code != 0:
            return RunOutcome("handed back", "worker stopping: handed back to the queue to resume from its checkpoint")
        if code != 0:
            return RunOutcome("failed", last_error_message(self.job) or f"The training program exited with {code}.")
        return RunOutcome("trained")


class LeaseKeeper:
    """A heartbeat thread renewing a run's lease; `lost` is set when a renewal fails for the whole lease (the lease
    may have lapsed and another run taken it) or another owner holds it."""

    def __init__(self, job_id: int, owner: str, duration: timedelta):
        """Start renewing every quarter of the lease."""
        self.job_id, self.owner, self.duration = job_id, owner, duration
        self.lost, self._stopped = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{job_id}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        """Renew until stopped; a failure is retried at the next beat, until the lease would have lapsed."""
        renewed = time.monotonic()
        while not self._stopped.wait(self.duration.total_seconds() / 4):
            try:
                with database.connection_context():
                    held = leases.renew(self.job_id, self.owner, self.duration)
            except Exception as error:  # a database hiccup: the next beat tries again
                log.warning("renewing the lease of job %s failed: %s", self.job_id, error)
                held = None
            if held:
                renewed = time.monotonic()
            if held is False or time.monotonic() - renewed >= self.duration.total_seconds():
                self.lost.set()
                return

    def stop(self) -> None:
        """Stop renewing (the run ended)."""
        self._stopped.set()
        self._thread.join(timeout=5)


def _die_with(parent: int):
    """A preexec function that has the kernel SIGKILL the child when its parent dies (Linux), so the training
    program never outlives a supervisor that was killed; elsewhere it does nothing."""
    if not sys.platform.startswith("linux"):
        return None

    def arrange() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the request was in place
            os._exit(1)

    return arrange


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
