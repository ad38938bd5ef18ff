"""Fixtures of the job tests."""
from __future__ import annotations

import io
from collections.abc import Callable

import pytest

from app.jobs.backends import TrainingInputs
from app.jobs.backends.kaggle.backend import KaggleBackend
from tests.kaggle_emulator import KaggleEmulator
from tests.support.data import as_jsonl, learnable_chats
from tests.support.kaggle import KAGGLE_KEY, KAGGLE_USER, kaggle_backend_for, point_client_at, training_inputs

# --- Kaggle: the emulator, the client's environment, the backend (tests/jobs/test_kaggle_backend.py) ---------


@pytest.fixture
def kaggle_emulator(tmp_path) -> KaggleEmulator:
    """A running emulator with the account alice, on its own port and folder."""
    with KaggleEmulator(tmp_path / "kaggle", {KAGGLE_USER: KAGGLE_KEY}) as emulator:
        yield emulator


@pytest.fixture
def kaggle_client_env(kaggle_emulator, monkeypatch, tmp_path) -> KaggleEmulator:
    """The emulator, with this test's client pointed at it (monkeypatch restores the environment afterwards)."""
    point_client_at(kaggle_emulator, monkeypatch, tmp_path / "kaggle-config")
    return kaggle_emulator


@pytest.fixture
def kaggle_backend(kaggle_client_env, tmp_path) -> KaggleBackend:
    """alice's backend, talking to the emulator."""
    return kaggle_backend_for(tmp_path / "data")


@pytest.fixture
def make_inputs(tmp_path) -> Callable[..., TrainingInputs]:
    """training_inputs() in this test's folder."""
    return lambda **options: training_inputs(tmp_path / "job-data", **options)


# --- Jobs end to end: a user with a token and a ready dataset ------------------------------------------------


@pytest.fixture
def headers(user, make_token):
    """The API headers of the user."""
    return {"Authorization": f"Bearer {make_token(user)}"}


@pytest.fixture
def dataset_id(client, headers):
    """A ready chat dataset of the user."""
    data = as_jsonl(learnable_chats(64))
    response = client.post("/api/v1/datasets", headers=headers, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(data), "chats.jsonl")})
    assert response.get_json()["status"] == "ready", response.get_json()
    return response.get_json()["id"]
