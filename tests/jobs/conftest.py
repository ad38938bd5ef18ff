"""Fixtures of the job tests."""
from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from app.db import database
from app.jobs.backends import TrainingInputs
from app.jobs.backends.kaggle.backend import KaggleBackend, Patience
from app.models import JobEvent
from app.settings import Settings
from tests.kaggle_emulator import KaggleEmulator
from tests.support.processes import wait_until
from tests.training.conftest import learnable_chats
from trainer.bundle import build_bundle

# --- Kaggle: the emulator, the client's environment, the backend (tests/jobs/test_kaggle_backend.py) ---------

KAGGLE_USER, KAGGLE_KEY = "alice", "alice-key"
# Quick to give up and to retry: the emulator answers at once.
TEST_PATIENCE = Patience(attempts=3, backoff_seconds=0.01, log_idle_seconds=0.3, log_budget_seconds=3.0,
                         dataset_ready_seconds=0.3, dataset_check_seconds=0.05)
# A few seconds of the built-in tiny model on one CPU core.
TINY_CONFIG = {"base_model": "tiny-random-llama", "method": "lora",
               "hyperparameters": {"max_steps": 4, "batch_size": 2, "gradient_accumulation_steps": 1,
                                   "max_seq_length": 64, "logging_steps": 1, "save_steps": 2, "lora_r": 4,
                                   "lora_alpha": 8}}


@pytest.fixture
def kaggle_emulator(tmp_path) -> KaggleEmulator:
    """A running emulator with the account alice, on its own port and folder."""
    with KaggleEmulator(tmp_path / "kaggle", {KAGGLE_USER: KAGGLE_KEY}) as emulator:
        yield emulator


def point_client_at(emulator: KaggleEmulator, patch: pytest.MonkeyPatch, config_dir: Path) -> None:
    """Send the kaggle client of this process to the emulator, without the developer's own credentials."""
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        patch.delenv(name, raising=False)
    for name, value in emulator.client_env().items():
        patch.setenv(name, value)
    patch.setenv("KAGGLE_CONFIG_DIR", str(config_dir))


@pytest.fixture
def kaggle_client_env(kaggle_emulator, monkeypatch, tmp_path) -> KaggleEmulator:
    """The emulator, with this test's client pointed at it (monkeypatch restores the environment afterwards)."""
    point_client_at(kaggle_emulator, monkeypatch, tmp_path / "kaggle-config")
    return kaggle_emulator


def kaggle_backend_for(data_dir: Path, **credentials: str) -> KaggleBackend:
    """A Kaggle backend with these credentials (alice's by default) and the tests' patience."""
    credentials = credentials or {"kaggle_username": KAGGLE_USER, "kaggle_key": KAGGLE_KEY}
    settings = Settings(data_dir=data_dir, training_backends="local,kaggle", **credentials)
    return KaggleBackend(settings, patience=TEST_PATIENCE)


@pytest.fixture
def kaggle_backend(kaggle_client_env, tmp_path) -> KaggleBackend:
    """alice's backend, talking to the emulator."""
    return kaggle_backend_for(tmp_path / "data")


def chats(count: int, answer: str = "hello") -> list[dict]:
    """Tiny chat records."""
    return [{"messages": [{"role": "user", "content": f"say it {index}"}, {"role": "assistant", "content": answer}]}
            for index in range(count)]


def training_inputs(folder: Path, job_id: int = 7, config: dict | None = None, records: list[dict] | None = None,
                    model_source: str = "builtin") -> TrainingInputs:
    """A job's inputs: train.jsonl written under folder, hashed, and the real training program (bundled beside)."""
    folder.mkdir(parents=True, exist_ok=True)
    train_file = folder / "train.jsonl"
    train_file.write_text("".join(json.dumps(record) + "\n" for record in records or chats(8)))
    return TrainingInputs(job_id=job_id, config=config or TINY_CONFIG, data_dir=folder,
                          dataset_sha256=hashlib.sha256(train_file.read_bytes()).hexdigest(),
                          model_source=model_source, training_program=build_bundle(folder.parent / "bundles"))


@pytest.fixture
def make_inputs(tmp_path) -> Callable[..., TrainingInputs]:
    """training_inputs() in this test's folder."""
    return lambda **options: training_inputs(tmp_path / "job-data", **options)


# --- Jobs end to end: a user with a token and a ready dataset, and how tests watch a job --------------------


@pytest.fixture
def headers(user, make_token):
    """The API headers of the user."""
    return {"Authorization": f"Bearer {make_token(user)}"}


@pytest.fixture
def dataset_id(client, headers):
    """A ready chat dataset of the user."""
    data = "".join(json.dumps(chat) + "\n" for chat in learnable_chats(64)).encode()
    response = client.post("/api/v1/datasets", headers=headers, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(data), "chats.jsonl")})
    assert response.get_json()["status"] == "ready", response.get_json()
    return response.get_json()["id"]


def job_state(client, headers, job_id) -> dict:
    """The job as the API shows it."""
    return client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()


def wait_for_status(client, headers, job_id, wanted: set[str], timeout: float = 180) -> dict:
    """Poll the API until the job reaches one of the wanted statuses."""
    return wait_until(lambda: (state := job_state(client, headers, job_id))["status"] in wanted and state,
                      timeout, f"job {job_id} to be {wanted}")


def status_events(app, job_id) -> list[str]:
    """The statuses the job moved to, in order."""
    with app.app_context(), database.connection_context():
        rows = JobEvent.select().where((JobEvent.job == job_id) & (JobEvent.kind == "status")).order_by(JobEvent.id)
        return [row.data["to"] for row in rows]


