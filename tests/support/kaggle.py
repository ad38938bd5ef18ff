"""The Kaggle side of the job tests: alice's account on the emulator, the client sent there, quick patience,
and a job's inputs on disk."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from app.jobs.backends import TrainingInputs
from app.jobs.backends.kaggle.backend import KaggleBackend, Patience
from app.settings import Settings
from tests.kaggle_emulator import KaggleEmulator
from tests.support.data import chats
from trainer.bundle import build_bundle

KAGGLE_USER, KAGGLE_KEY = "alice", "alice-key"
# Quick to give up and to retry: the emulator answers at once.
TEST_PATIENCE = Patience(attempts=3, backoff_seconds=0.01, log_idle_seconds=0.3, log_budget_seconds=3.0,
                         dataset_ready_seconds=0.3, dataset_check_seconds=0.05)
# A few seconds of the built-in tiny model on one CPU core.
TINY_CONFIG = {"base_model": "tiny-random-llama", "method": "lora",
               "hyperparameters": {"max_steps": 4, "batch_size": 2, "gradient_accumulation_steps": 1,
                                   "max_seq_length": 64, "logging_steps": 1, "save_steps": 2, "lora_r": 4,
                                   "lora_alpha": 8}}


def point_client_at(emulator: KaggleEmulator, patch: pytest.MonkeyPatch, config_dir: Path) -> None:
    """Send the kaggle client of this process to the emulator, without the developer's own credentials."""
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        patch.delenv(name, raising=False)
    for name, value in emulator.client_env().items():
        patch.setenv(name, value)
    patch.setenv("KAGGLE_CONFIG_DIR", str(config_dir))


def kaggle_backend_for(data_dir: Path, **credentials: str) -> KaggleBackend:
    """A Kaggle backend with these credentials (alice's by default) and the tests' patience."""
    credentials = credentials or {"kaggle_username": KAGGLE_USER, "kaggle_key": KAGGLE_KEY}
    settings = Settings(data_dir=data_dir, training_backends="local,kaggle", kaggle_shared_account=True, **credentials)
    return KaggleBackend(settings, patience=TEST_PATIENCE)


def training_inputs(folder: Path, job_id: int = 7, config: dict | None = None, records: list[dict] | None = None,
                    model_source: str = "builtin", installation_id: str = "studio") -> TrainingInputs:
    """A job's inputs: train.jsonl written under folder, hashed, and the real training program (bundled beside)."""
    folder.mkdir(parents=True, exist_ok=True)
    train_file = folder / "train.jsonl"
    train_file.write_text("".join(json.dumps(record) + "\n" for record in records or chats(8)))
    return TrainingInputs(job_id=job_id, config=config or TINY_CONFIG, data_dir=folder,
                          dataset_sha256=hashlib.sha256(train_file.read_bytes()).hexdigest(),
                          model_source=model_source, training_program=build_bundle(folder.parent / "bundles"),
                          installation_id=installation_id)


def with_kaggle(settings: Settings, folder: Path, **overrides) -> Settings:
    """settings with both backends enabled on alice's account (the shared one, offered to every user), the
    client's folder under folder, no rate limits, short leases and reconciler passes (so recoveries happen within
    a test), and overrides on top."""
    return settings.model_copy(update={
        "training_backends": "local,kaggle", "kaggle_username": KAGGLE_USER, "kaggle_key": KAGGLE_KEY,
        "kaggle_shared_account": True,
        "kaggle_config_dir": folder / "kaggle-config", "rate_limits_enabled": False, "job_lease_seconds": 4,
        "reconcile_interval": 5, **overrides})
