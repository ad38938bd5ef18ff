"""Fixtures of the deployment tests: the production compose model as Compose v2 resolves it."""
from __future__ import annotations

import json

import pytest

from tests.support.deploy import REQUIRED_ENV, compose_config


@pytest.fixture(scope="session")
def compose(tmp_path_factory) -> dict:
    """The production compose model as Compose v2 resolves it (anchors merged, variables interpolated)."""
    result = compose_config(tmp_path_factory.mktemp("compose"), REQUIRED_ENV,
                            "--profile", "tls", "--profile", "playground")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
