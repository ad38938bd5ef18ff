"""The training program run as the tests run it: job folders on disk, the program as a real subprocess."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.data import learnable_chats
from tests.support.processes import PROJECT_ROOT
from trainer.config import INIT_ADAPTER_PREFIX, TINY_MODEL_ID
from trainer.protocol import parse_progress_line

# The program as a developer runs it from the checkout; the Studio runs the bundle (the `bundle` fixture).
MODULE = ("-m", "trainer")
# A short, learnable run: the answer depends only on the prompt's verb, so the loss can fall close to zero.
REFERENCE_HYPERPARAMETERS = {
    "max_steps": 60, "learning_rate": 0.01, "batch_size": 8, "gradient_accumulation_steps": 2,
    "max_seq_length": 128, "warmup_ratio": 0.05, "lora_r": 8, "lora_alpha": 16, "logging_steps": 5,
    "eval_steps": 20, "save_steps": 10, "validation_split": 0.1, "seed": 3,
}


def write_jsonl(path: Path, records: list[dict]) -> Path:
    """Write records one JSON object a line, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def make_job(folder: Path, config: dict, records: list[dict] | None = None) -> tuple[Path, Path, Path]:
    """A config file, a data folder holding train.jsonl, and an output folder path, all under folder."""
    write_jsonl(folder / "data" / "train.jsonl", learnable_chats(200) if records is None else records)
    (folder / "config.json").write_text(json.dumps(config))
    return folder / "config.json", folder / "data", folder / "out"


def reference_config(**hyperparameters) -> dict:
    """The reference run's config, with hyperparameters overridden."""
    return {"base_model": TINY_MODEL_ID, "method": "lora", "merge_adapter": True,
            "hyperparameters": {**REFERENCE_HYPERPARAMETERS, **hyperparameters}}


@dataclass
class Finished:
    """A finished run of the program: exit status, its events in order, its stderr and output folder."""

    returncode: int
    events: list[dict]
    stderr: str
    output: Path

    def of_type(self, event_type: str) -> list[dict]:
        """The events of one type."""
        return [event for event in self.events if event["type"] == event_type]


def command(program: tuple[str, ...], config: Path, data: Path, output: Path) -> list[str]:
    """The command line that runs the program (the bundle, or MODULE from the project root)."""
    return [sys.executable, *program, "--config", str(config), "--data", str(data), "--output", str(output)]


def run_program(program: tuple[str, ...], config: Path, data: Path, output: Path) -> Finished:
    """Run the program to the end as a subprocess."""
    done = subprocess.run(command(program, config, data, output), capture_output=True, text=True, timeout=240,
                          cwd=PROJECT_ROOT)
    events = [parse_progress_line(line) for line in done.stdout.splitlines()]
    assert None not in events, f"stdout holds a line that is not a protocol line:\n{done.stdout}"
    return Finished(done.returncode, events, done.stderr, output)


def run_job(program: tuple[str, ...], folder: Path, config: dict, records: list[dict] | None = None) -> Finished:
    """Write the job's files under folder and run the program on them."""
    return run_program(program, *make_job(folder, config, records))


def copy_init_adapter(adapter: Path, data: Path) -> None:
    """An earlier run's adapter files in a data folder, flat and prefixed as the Studio downloads them."""
    for path in adapter.iterdir():
        shutil.copyfile(path, data / f"{INIT_ADAPTER_PREFIX}{path.name}")
