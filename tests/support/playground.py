"""A succeeded job whose adapter is really in storage (built here with peft on the tiny model, no training), and
the playground worker."""
from __future__ import annotations

import io
import sys
from contextlib import contextmanager
from pathlib import Path

from tests.support.factories import make_job
from tests.support.processes import running
from tests.support.settings import settings_env


def adapter_files(folder: Path) -> Path:
    """A LoRA adapter of the tiny model with random (non-zero) weights, so it answers unlike the base."""
    import peft
    import torch

    from trainer.models import build_tiny_model, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    model = peft.get_peft_model(build_tiny_model(tokenizer), peft.LoraConfig(r=4, lora_alpha=8,
                                                                           target_modules=["q_proj", "v_proj"]))
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(7)
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def job_with_adapter(owner, store, folder: Path, **fields):
    """A succeeded LoRA job of owner on the tiny model whose adapter/ artifacts hold adapter_files()."""
    from app.models import Artifact

    job = make_job(owner, status="succeeded", stage="done", **fields)
    for path in sorted(adapter_files(folder).iterdir()):
        key = f"jobs/{job.id}/artifacts/adapter/{path.name}"
        data = path.read_bytes()
        store.put(key, io.BytesIO(data), len(data))
        Artifact.create(job=job, name=f"adapter/{path.name}", object_key=key, size_bytes=len(data))
    return job


@contextmanager
def playground_worker(settings, log_path: Path, extra_env: dict | None = None):
    """`python -m workers --playground` on the settings' services, until the context ends."""
    with running([sys.executable, "-m", "workers", "--playground"], {**settings_env(settings), **(extra_env or {})},
                 log_path) as process:
        yield process

