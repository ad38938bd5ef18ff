"""A whole run, from a validated config to the saved outputs: load, resume, train, save, judge, report."""
from __future__ import annotations

import shutil
import threading
from pathlib import Path

import transformers

from trainer import distributed, samples
from trainer.checkpoints import export_kept, init_adapter_folder
from trainer.config import Config
from trainer.data import load_datasets
from trainer.loop import Run, checkpoint_dirs
from trainer.models import detect_hardware, load_model, load_tokenizer, prepare_for_training
from trainer.outputs import resolved_arguments, save_merged_model, save_model, write_json
from trainer.preference import PreferenceRun, load_pairs
from trainer.protocol import Reporter


def load_prepared_model(config: Config, data_dir: Path, hardware, tokenizer):
    """The base model made ready to train: a new adapter, or the earlier job's one when the config continues it."""
    adapter_from = init_adapter_folder(data_dir) if config.init_adapter else None
    try:
        return prepare_for_training(load_model(config, hardware, tokenizer), config, adapter_from)
    finally:
        if adapter_from is not None:
            shutil.rmtree(adapter_from, ignore_errors=True)


def start_run(config: Config, data_dir: Path, output: Path, reporter: Reporter) -> tuple[Run, dict]:
    """Load tokenizer, data and model, resume from a checkpoint when one exists, and report the start."""
    place = distributed.world()  # one of several data-parallel processes, or alone
    distributed.start(place)
    hardware = distributed.on_own_gpu(detect_hardware(config), place)
    reporter = distributed.reporter_for(place, reporter)
    transformers.set_seed(config.hyperparameters.seed)
    tokenizer = load_tokenizer(config.base_model)
    load = load_pairs if config.preference else load_datasets
    train_set, validation, stats = load(data_dir, config, tokenizer)
    model = load_prepared_model(config, data_dir, hardware, tokenizer)
    run_class = PreferenceRun if config.preference else Run
    run = run_class(config, hardware, model, tokenizer, (train_set, validation), output, reporter)
    resumed_from = run.resume()
    arguments = resolved_arguments(run, stats)
    if place.main:
        write_json(output / "training_args.json", arguments)
    details = {k: v for k, v in arguments["resolved"].items() if k not in ("data", "total_steps")}
    reporter.emit("start", **run.position(), resumed_from_step=resumed_from, base_model=config.base_model,
                  method=config.method, **details, **stats)
    return run, stats


def train(config: Config, data_dir: Path, output: Path, reporter: Reporter, stop: threading.Event) -> dict:
    """Train as config says until done (or until stop is set), save and judge the outputs; returns the done event."""
    run, stats = start_run(config, data_dir, output, reporter)
    base_first = samples.base_answers_before_training(run, data_dir)
    run.fit(stop)
    distributed.stop(run.world)
    if not run.world.main:  # rank 0 writes the outputs
        return {}
    outputs = {"model": save_model(run)}
    if config.merge_adapter and config.adapter != "full":
        outputs["merged"] = save_merged_model(config, run.hardware, run.tokenizer, output)
    export_kept(run, checkpoint_dirs(output / "checkpoints"), outputs["model"])
    outputs["samples"] = samples.write_samples(run, data_dir, base_first)
    final = {"loss": run.last_loss, "eval_loss": run.last_eval_loss,
             "tokens_per_second": run.meter.tokens_per_second(), "train_seconds": round(run.meter.seconds, 2)}
    write_json(output / "metrics.json", {**final, **run.last_eval_metrics, **run.position(), "data": stats,
                                         "history": run.history})
    return reporter.emit("done", **run.position(), **final, eta_seconds=0, outputs=outputs)
