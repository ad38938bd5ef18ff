"""The bootstrap of a Kaggle kernel: writes the embedded training program and config, runs it, archives the outputs.

The Kaggle backend pushes this module's source, followed by the job's values and a call to run(), as the
kernel's single script file, so it uses the standard library only and imports nothing from the Studio.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PROGRESS_PREFIX = "@@studio "
OUTPUT_ARCHIVE = "studio-outputs.zip"
# Checkpoints only matter to a run in progress; Kaggle serves at most 500 output files, so they are dropped.
SKIPPED_OUTPUTS = ("checkpoints",)


def run(job: dict, program: str) -> int:
    """Train as job describes and leave one archive of the outputs in the working folder; returns the exit status."""
    input_root = Path(os.environ.get("KAGGLE_INPUT_DIR", "/kaggle/input"))
    working = Path(os.environ.get("KAGGLE_WORKING_DIR", "/kaggle/working"))
    scratch = Path(tempfile.mkdtemp(prefix="studio-"))
    try:
        command = prepare_command(job, program, input_root, working, scratch)
        # The command is this interpreter running the program this kernel carries.
        return subprocess.run(command, env={**os.environ, "PYTHONUNBUFFERED": "1"}, check=False).returncode  # noqa: S603
    except Exception as error:  # the Studio shows this line's message, whatever broke here
        report_error(f"The Kaggle kernel could not start the training program: {error}")
        return 1
    finally:
        archive_outputs(working)
        shutil.rmtree(scratch, ignore_errors=True)


def prepare_command(job: dict, program: str, input_root: Path, working: Path, scratch: Path) -> list[str]:
    """Write the program and its config under scratch; the command line that runs them on the attached inputs."""
    config = dict(job["config"])
    if job.get("model_path"):
        config["base_model"] = str(find_input(input_root, job["model_path"]))
    (scratch / "config.json").write_text(json.dumps(config))
    (scratch / "train.py").write_text(program)
    data = find_input(input_root, job["dataset_slug"])
    working.mkdir(parents=True, exist_ok=True)
    return [sys.executable, str(scratch / "train.py"), "--config", str(scratch / "config.json"),
            "--data", str(data), "--output", str(working)]


def find_input(root: Path, relative: str) -> Path:
    """An attached input: root/relative, or the same path deeper down (Kaggle has moved its mount points before)."""
    if (root / relative).is_dir():
        return root / relative
    found = sorted(path for path in root.glob(f"**/{relative}") if path.is_dir())
    if not found:
        raise FileNotFoundError(f"the input {relative} is not attached under {root}")
    return found[0]


def archive_outputs(working: Path) -> None:
    """Move every output except the skipped folders into one zip archive, so that all of it can be downloaded."""
    if not working.is_dir():
        return
    entries = [entry for entry in sorted(working.iterdir()) if entry.name != OUTPUT_ARCHIVE]
    with zipfile.ZipFile(working / OUTPUT_ARCHIVE, "w", zipfile.ZIP_DEFLATED) as archive:
        for entry in entries:
            if entry.name in SKIPPED_OUTPUTS:
                continue
            for path in [entry, *sorted(entry.rglob("*"))] if entry.is_dir() else [entry]:
                if path.is_file():
                    archive.write(path, path.relative_to(working).as_posix())
    for entry in entries:
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def report_error(message: str) -> None:
    """Print an error line of the training program's protocol, which the Studio shows to the user."""
    print(PROGRESS_PREFIX + json.dumps({"type": "error", "message": message}), flush=True)
