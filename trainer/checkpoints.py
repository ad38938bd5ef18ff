"""Checkpoints as results: each kept one's adapter and metrics, their list, and an earlier adapter to start from."""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from trainer.config import INIT_ADAPTER_PREFIX
from trainer.models import save_adapter

CHECKPOINTS_FILE = "checkpoints.json"
KEPT_FOLDER = "checkpoint_adapters"  # not under checkpoints/, which holds resume state only the run itself needs
METRICS_FILE = "metrics.json"


def checkpoint_metrics(run) -> dict:
    """The metrics of the current step: the last training loss and the validation metrics (evaluated now)."""
    metrics = {"train_loss": run.last_loss}
    if run.validation:
        if run.last_eval_metrics.get("step") != run.step:
            run.last_eval_metrics = {"step": run.step, **run.eval_metrics()}
        found = run.last_eval_metrics  # a preference run reports rewards instead of token accuracy
        metrics.update(valid_loss=found["eval_loss"], valid_mean_token_accuracy=found.get("eval_accuracy"),
                       valid_perplexity=found.get("eval_perplexity"))
    return metrics


def save_extras(run, folder: Path) -> dict:
    """Into a checkpoint's folder: its adapter (for the adapter methods) and its metrics; returns the metrics."""
    metrics = checkpoint_metrics(run)
    if run.config.adapter != "full":
        save_adapter(run.model, folder / "adapter")
    (folder / METRICS_FILE).write_text(json.dumps(metrics))
    return metrics


def export_kept(run, kept: list[Path], final_artifact: str | None) -> list[dict]:
    """Copy the kept checkpoints' adapters beside the outputs; list them, the final step last, in checkpoints.json."""
    listed = []
    for folder in kept:
        step = int(folder.name.split("-")[1])
        metrics_path = folder / METRICS_FILE
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
        artifact = None
        if (folder / "adapter").is_dir():
            artifact = f"{KEPT_FOLDER}/{folder.name}"
            shutil.copytree(folder / "adapter", run.output / artifact, dirs_exist_ok=True)
        listed.append({"step": step, "metrics": metrics, "artifact": artifact})
    if not listed or listed[-1]["step"] != run.step:
        listed.append({"step": run.step, "metrics": checkpoint_metrics(run), "artifact": final_artifact})
    (run.output / CHECKPOINTS_FILE).write_text(json.dumps(listed, indent=2) + "\n")
    return listed


def init_adapter_folder(data_dir: Path) -> Path:
    """The earlier adapter's files (flat in the data folder, named with the prefix) gathered into a folder."""
    folder = Path(tempfile.mkdtemp(prefix="studio-init-adapter-"))
    for path in data_dir.glob(f"{INIT_ADAPTER_PREFIX}*"):
        shutil.copyfile(path, folder / path.name[len(INIT_ADAPTER_PREFIX):])
    return folder
