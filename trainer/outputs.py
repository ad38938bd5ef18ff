"""What a finished run leaves in its output folder: the adapter or model, the merged model, the JSON records."""
from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import peft
import torch
import transformers

from trainer.config import TINY_MODEL_ID, Config
from trainer.loop import Run
from trainer.models import Hardware, build_tiny_model, save_adapter, torch_dtype


def save_model(run: Run) -> str:
    """The adapter (or, for full fine-tuning, the whole model) as safetensors with the tokenizer files."""
    if run.config.adapter == "full":
        folder = "model"
        run.model.save_pretrained(run.output / folder, safe_serialization=True)
    else:
        folder = "adapter"
        save_adapter(run.model, run.output / folder)
    run.tokenizer.save_pretrained(run.output / folder)
    return folder


def save_merged_model(config: Config, hardware: Hardware, tokenizer, output: Path) -> str:
    """The base model with the adapter merged in, in the run's 16-bit precision (fp32 on a CPU).

    The base is loaded again unquantized on the CPU, so that a QLoRA adapter merges into real weights.
    """
    dtype = torch_dtype(hardware.precision)
    if config.base_model == TINY_MODEL_ID:
        base = build_tiny_model(tokenizer).to(dtype)
    else:
        base = transformers.AutoModelForCausalLM.from_pretrained(config.base_model, dtype=dtype)
    merged = peft.PeftModel.from_pretrained(base, output / "adapter").merge_and_unload()
    merged.save_pretrained(output / "merged", safe_serialization=True)
    tokenizer.save_pretrained(output / "merged")
    return "merged"


def parameter_counts(model) -> dict:
    """Trainable and total parameters."""
    counts = {"trainable_parameters": 0, "total_parameters": 0}
    for parameter in model.parameters():
        counts["total_parameters"] += parameter.numel()
        counts["trainable_parameters"] += parameter.numel() if parameter.requires_grad else 0
    return counts


def resolved_arguments(run: Run, stats: dict) -> dict:
    """The config with every default filled in, and what the program decided from it."""
    targets = getattr(run.model, "peft_config", {}).get("default")
    return {
        "config": asdict(run.config),
        "resolved": {
            "device": run.hardware.name, "precision": run.hardware.precision,
            "lora_target_modules": sorted(targets.target_modules) if targets else None,
            "total_steps": run.plan.total_steps, "steps_per_epoch": run.plan.steps_per_epoch,
            "warmup_steps": run.warmup_steps, **parameter_counts(run.model), "data": stats,
        },
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                     "transformers": transformers.__version__, "peft": peft.__version__},
    }


def write_json(path: Path, value) -> None:
    """Write value as indented JSON, atomically: a reader (the Studio's "trained already" check) sees all or none."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(value, indent=2, default=str) + "\n")
    os.replace(partial, path)
