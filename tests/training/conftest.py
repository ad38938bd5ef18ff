"""Fixtures of the training tests: one thread for in-process runs, the bundle, one shared reference run."""
from __future__ import annotations

import pytest
import torch

from tests.support.training import Finished, reference_config, run_job
from trainer.bundle import build_bundle


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """In-process tests run the tiny model on one thread, as the program does (several threads stall on each
    other while other tests keep the cores busy)."""
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def bundle(tmp_path_factory) -> tuple[str, ...]:
    """The program as the Studio runs it: the bundle, built once per test process."""
    return (str(build_bundle(tmp_path_factory.mktemp("bundle"))),)


@pytest.fixture(scope="session")
def reference_run(bundle, tmp_path_factory) -> Finished:
    """The reference LoRA run, trained once per test process (its tests share an xdist group)."""
    finished = run_job(bundle, tmp_path_factory.mktemp("reference"), reference_config())
    assert finished.returncode == 0, finished.stderr
    return finished
