"""What the Studio pushes to Kaggle and reads back: slugs and titles, the files' metadata, the kernel script.

Everything here is derived from the job and its inputs, the same on every attempt, so that a retried step finds
what an earlier attempt pushed instead of pushing it again (docs/KAGGLE.md).
"""
from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from app.jobs.backends import TrainingInputs
from app.jobs.backends.kaggle import bootstrap
from trainer.protocol import parse_progress_line

KERNEL_FILE = "studio_job.py"
MACHINE_SHAPE = "NvidiaTeslaT4"  # "GPU T4 x2"; the client warns that the P100 is retired
DATASET_LICENSE = "unknown"  # the user's own data: the Studio claims no license for it


def dataset_slug(installation_id: str, job_id: int) -> str:
    """The slug of a job's Kaggle dataset (6–50 characters), the same on every attempt; the installation's id
    keeps two Studios on one Kaggle account (or one whose job ids restarted) out of each other's datasets."""
    return f"studio-{installation_id}-job-{job_id}-data"


def kernel_title(inputs: TrainingInputs, run: int = 1) -> str:
    """The kernel's title, derived from the job and everything the run depends on, so a retry finds its push."""
    program = hashlib.sha256(inputs.training_program.read_bytes()).hexdigest()
    content = json.dumps([inputs.job_id, run, inputs.dataset_sha256, inputs.config, inputs.model_source, program],
                         sort_keys=True)
    digest = hashlib.sha256(content.encode()).hexdigest()[:8]
    return f"Finetune Studio {inputs.installation_id} job {inputs.job_id} {digest}"


def kernel_slug(title: str) -> str:
    """The slug Kaggle derives from a kernel title: lower-case words joined by dashes."""
    return "-".join(title.lower().split())


def kernel_script(job: dict, bundle: bytes) -> str:
    """The kernel's single file: the bootstrap, the job's values, the training program's bundle in base64, the call."""
    source = Path(bootstrap.__file__).read_text()
    return (f"{source}\n\n# The job, written by Finetune Studio.\nJOB = json.loads({json.dumps(job)!r})\n"
            f'BUNDLE = """\n{base64.encodebytes(bundle).decode()}"""\n\n'
            f"if __name__ == \"__main__\":\n    sys.exit(run(JOB, BUNDLE))\n")


@dataclass(frozen=True)
class Push:
    """One kernel version to push: the job's inputs, what it attaches, and which session of the job it runs."""

    inputs: TrainingInputs
    dataset: str                       # owner/slug of the job's dataset
    model: str | None                  # owner/model/framework/variation/version of a Kaggle Model, or None
    kernel: str                        # owner/slug of the job's kernel
    title: str
    session: int                       # 1 for the first; a later one resumes from the previous version's output
    time_budget: int                   # the seconds the program may train before it checkpoints and stops

    @property
    def previous_output(self) -> str | None:
        """owner/slug/version of the kernel version whose output this session resumes from."""
        return f"{self.kernel}/{self.session - 1}" if self.session > 1 else None


def stage_kernel(push: Push, folder: Path) -> None:
    """The folder the client pushes: the kernel script and kernel-metadata.json."""
    job = {"config": push.inputs.config, "dataset_slug": push.dataset.split("/")[1],
           "model_path": push.model.split("/", 1)[1] if push.model else None, "time_budget": push.time_budget,
           "resume_from": push.kernel.split("/")[1] if push.previous_output else None}
    (folder / KERNEL_FILE).write_text(kernel_script(job, push.inputs.training_program.read_bytes()))
    metadata = kernel_metadata(push.inputs, push.dataset, push.model, push.kernel, push.title)
    metadata["kernel_sources"] = [push.previous_output] if push.previous_output else []
    (folder / "kernel-metadata.json").write_text(json.dumps(metadata))


def error_message(lines: list[str]) -> str | None:
    """The message of the last `@@studio {"type": "error"}` line among lines."""
    events = (parse_progress_line(line) for line in reversed(lines))
    return next((str(event["message"]) for event in events
                 if event and event["type"] == "error" and event.get("message")), None)


def paused_step(lines: list[str]) -> int | None:
    """The step of the bootstrap's pause line (the run stopped at its time budget, its checkpoint saved)."""
    events = (parse_progress_line(line) for line in reversed(lines))
    return next((int(event["step"]) for event in events
                 if event and event["type"] == "checkpoint" and event.get("paused") and event.get("step")), None)


def dataset_metadata(inputs: TrainingInputs, dataset: str) -> dict:
    """dataset-metadata.json of a job's private dataset; its description records the content hash."""
    return {
        "id": dataset, "title": f"Finetune Studio {inputs.installation_id} job {inputs.job_id} data",
        "licenses": [{"name": DATASET_LICENSE}], "keywords": [],
        "description": f"Training data of Finetune Studio job {inputs.job_id}, sha256 {inputs.dataset_sha256}",
    }


def kernel_metadata(inputs: TrainingInputs, dataset: str, model: str | None, kernel: str, title: str) -> dict:
    """kernel-metadata.json of a job's private GPU script kernel, with its dataset and model attached."""
    return {
        "id": kernel, "title": title, "code_file": KERNEL_FILE, "language": "python", "kernel_type": "script",
        "is_private": True, "enable_gpu": True, "enable_tpu": False, "machine_shape": MACHINE_SHAPE,
        "enable_internet": inputs.model_source == "hub", "dataset_sources": [dataset],
        "model_sources": [model] if model else [], "kernel_sources": [], "competition_sources": [],
        "keywords": [],
    }
