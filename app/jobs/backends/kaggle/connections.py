"""Authenticated Kaggle clients of one process, one per account: a worker serves every user's account."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from app import counters
from app.jobs.backends.kaggle import client
from app.jobs.backends.kaggle.accounts import Credentials


class Connections:
    """Builds each account's clients once (the ordinary one and the live log's) and keeps them."""

    def __init__(self, settings, redis, timeout: tuple[float, float], log_idle_seconds: float):
        """Clients with these timeouts; calls counted into redis when there is one."""
        self.settings, self.redis = settings, redis
        self.timeouts = {"api": timeout, "log": (timeout[0], log_idle_seconds)}
        self._clients: dict[tuple[str, str], object] = {}

    def api(self, credentials: Credentials):
        """The account's client for ordinary calls."""
        return self._get(credentials, "api")

    def log_api(self, credentials: Credentials):
        """The account's client whose reads give up after a short silence (a live log)."""
        return self._get(credentials, "log")

    def _get(self, credentials: Credentials, kind: str):
        """The cached client of the account and kind, made on first use."""
        key = (credentials.fingerprint(), kind)
        if key not in self._clients:
            self._clients[key] = self._make(credentials, self.timeouts[kind])
        return self._clients[key]

    def _make(self, credentials: Credentials, timeout: tuple[float, float]):
        """Point the kaggle package at the Studio's config folder, then authenticate a client."""
        config_dir = Path(self.settings.kaggle_config_dir or self.settings.data_dir / "kaggle")
        config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Read when kaggle is first imported, which otherwise creates a folder in the home directory (also when
        # the variable is empty, as .env.example leaves it).
        os.environ["KAGGLE_CONFIG_DIR"] = str(config_dir)
        api = client.authenticated_api(credentials.client_values(), config_dir, timeout)
        return client.CountedApi(api, self._count_call)

    def _count_call(self, operation: str):
        """The metrics block around one Kaggle API call (nothing to count into without Redis)."""
        return counters.kaggle_call(self.redis, operation) if self.redis is not None else contextlib.nullcontext()
