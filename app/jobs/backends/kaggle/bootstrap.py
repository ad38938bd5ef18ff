"""The bootstrap of a Kaggle kernel: unpacks the embedded training program and config, runs it, archives the outputs.

The Kaggle backend pushes this module's source, followed by the job's values, the training program's bundle
(base64) and a call to run(), as the kernel's single script file, so it uses the standard library only and imports
nothing from the Studio; its error line comes from the protocol module inside the bundle.
"""
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

PROGRAM_FILE = "trainer.pyz"
OUTPUT_ARCHIVE = "studio-outputs.zip"
CHECKPOINTS = "checkpoints"
# The program's exit status once it saved a checkpoint and stopped (its time budget spent): trainer.protocol's.
EXIT_INTERRUPTED = 75


def run(job: dict, bundle: str) -> int:
    """Train as job describes and leave one archive of the outputs in the working folder; returns the exit status."""
    input_root = Path(os.environ.get("KAGGLE_INPUT_DIR", "/kaggle/input"))
    working = Path(os.environ.get("KAGGLE_WORKING_DIR", "/kaggle/working"))
    scratch = Path(tempfile.mkdtemp(prefix="studio-"))
    paused = False
    try:
        program = unpack_program(bundle, scratch)
        restore_checkpoint(job, input_root, working)
        status = launch(job, program, input_root, working, scratch)
        paused = status == EXIT_INTERRUPTED
        if paused:  # the session ends here, the job goes on in the next one: a success for Kaggle
            report_pause(program, working)
            status = 0
        return status
    finally:
        archive_outputs(working, keep_checkpoint=paused)
        shutil.rmtree(scratch, ignore_errors=True)


def restore_checkpoint(job: dict, input_root: Path, working: Path) -> None:
    """A later session: unpack the newest checkpoint from the previous session's attached output."""
    if not job.get("resume_from"):
        return
    archive = find_input(input_root, job["resume_from"]) / OUTPUT_ARCHIVE
    with zipfile.ZipFile(archive) as previous:
        members = [name for name in previous.namelist() if name.startswith(f"{CHECKPOINTS}/")]
        previous.extractall(working, members)
    print(f"Resuming from the previous session's checkpoint ({len(members)} files).", flush=True)


def report_pause(program: Path, working: Path) -> None:
    """The line that tells the Studio this session stopped at its time budget, at which checkpoint."""
    newest = newest_checkpoint(working)
    step = int(newest.name.removeprefix("step-")) if newest else 0
    protocol_of(program).Reporter().emit("checkpoint", step=step, paused=True,
                                         path=newest.relative_to(working).as_posix() if newest else None)


def newest_checkpoint(working: Path):
    """The newest complete checkpoint folder in the outputs, or None."""
    found = sorted(path for path in (working / CHECKPOINTS).glob("step-*") if (path / "state.pt").is_file())
    return found[-1] if found else None


def unpack_program(bundle: str, scratch: Path) -> Path:
    """Write the training program's bundle (base64) into scratch as a file that Python runs like a script."""
    program = scratch / PROGRAM_FILE
    program.write_bytes(base64.b64decode(bundle))
    return program


def launch(job: dict, program: Path, input_root: Path, working: Path, scratch: Path) -> int:
    """Run the program on the attached inputs, one process per GPU (both T4s of a session, data parallel); when
    it cannot even start, print an error line of its protocol."""
    protocol = protocol_of(program)
    try:
        command = prepare_command(job, program, input_root, working, scratch)
        return launch_processes(command, gpu_count() if job.get("data_parallel", True) else 1)
    except Exception as error:  # the Studio shows this line's message, whatever broke here
        protocol.print_error(f"The Kaggle kernel could not start the training program: {error}")
        return 1


def gpu_count() -> int:
    """The session's GPUs, as nvidia-smi lists them (0 when it cannot say)."""
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False, timeout=30)  # noqa: S607
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in listed.stdout.splitlines() if line.startswith("GPU "))


def launch_processes(command: list[str], count: int, output=None) -> int:
    """Run command once, or count times as ranks of one data-parallel run (torchrun's variables, a free port),
    their output to output (the kernel's own by default); the exit status is the first failing one's, and a
    failure stops the others (they would wait for it)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if count < 2:
        return subprocess.run(command, env=env, check=False, stdout=output,  # noqa: S603 (this kernel's own program)
                              stderr=output).returncode
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ranks = [subprocess.Popen(command, env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank),  # noqa: S603
                                            "WORLD_SIZE": str(count), "MASTER_ADDR": "127.0.0.1",
                                            "MASTER_PORT": str(port)}, stdout=output, stderr=output)
             for rank in range(count)]
    return wait_for_ranks(ranks)


def wait_for_ranks(ranks: list) -> int:
    """Wait for every rank; once one fails, stop the rest. The first failure's status, else 0 (or all 75)."""
    statuses: dict[int, int] = {}
    while len(statuses) < len(ranks):
        for index, process in enumerate(ranks):
            if index not in statuses and process.poll() is not None:
                statuses[index] = process.returncode
                if process.returncode not in (0, EXIT_INTERRUPTED):
                    for other in ranks:
                        if other.poll() is None:
                            other.kill()
        time.sleep(0.2)
    failures = [status for status in statuses.values() if status != 0]
    return failures[0] if failures else 0


def protocol_of(program: Path):
    """The bundled program's progress protocol, imported from the bundle (where the line format is defined)."""
    sys.path.insert(0, str(program))
    import trainer.protocol

    return trainer.protocol


def prepare_command(job: dict, program: Path, input_root: Path, working: Path, scratch: Path) -> list[str]:
    """Write the config under scratch; the command line that runs the program on the attached inputs."""
    config = dict(job["config"])
    if job.get("model_path"):
        config["base_model"] = str(find_input(input_root, job["model_path"]))
    (scratch / "config.json").write_text(json.dumps(config))
    data = find_input(input_root, job["dataset_slug"])
    working.mkdir(parents=True, exist_ok=True)
    budget = ["--time-budget", str(job["time_budget"])] if job.get("time_budget") else []
    return [sys.executable, str(program), "--config", str(scratch / "config.json"),
            "--data", str(data), "--output", str(working), *budget]


def find_input(root: Path, relative: str) -> Path:
    """An attached input: root/relative, or the same path deeper down (Kaggle has moved its mount points before)."""
    if (root / relative).is_dir():
        return root / relative
    found = sorted(path for path in root.glob(f"**/{relative}") if path.is_dir())
    if not found:
        raise FileNotFoundError(f"the input {relative} is not attached under {root}")
    return found[0]


def archive_outputs(working: Path, keep_checkpoint: bool = False) -> None:
    """Move every output into one zip archive, so that all of it can be downloaded (Kaggle serves at most 500
    files). Checkpoints matter only to a run in progress: the newest is kept when the next session resumes."""
    if not working.is_dir():
        return
    entries = [entry for entry in sorted(working.iterdir()) if entry.name != OUTPUT_ARCHIVE]
    newest = newest_checkpoint(working) if keep_checkpoint else None
    archived = [newest if entry.name == CHECKPOINTS else entry for entry in entries]
    with zipfile.ZipFile(working / OUTPUT_ARCHIVE, "w", zipfile.ZIP_DEFLATED) as archive:
        for entry in filter(None, archived):
            for path in [entry, *sorted(entry.rglob("*"))] if entry.is_dir() else [entry]:
                if path.is_file():
                    archive.write(path, path.relative_to(working).as_posix())
    for entry in entries:
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()

