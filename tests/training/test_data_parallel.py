"""Data parallel on a CPU: two gloo processes, launched as the Kaggle bootstrap launches one per T4, train the same
run as one process with the same global batch: the same loss at every step, one checkpoint writer, exact resume."""
from __future__ import annotations

import json

import pytest

from app.jobs.backends.kaggle.bootstrap import launch_processes
from tests.support.training import command, make_job, reference_config, run_program
from trainer.protocol import EXIT_INTERRUPTED

# Dropout off, so that both runs draw nothing random; what differs is only the order of float additions (the
# gradients summed over two processes, each micro-batch padded to its own half's length).
HYPERPARAMETERS = {"max_steps": 6, "batch_size": 4, "gradient_accumulation_steps": 2, "logging_steps": 1,
                   "save_steps": 3, "eval_steps": 100, "validation_split": 0.0, "lora_dropout": 0.0,
                   "max_seq_length": 64}
LOSS_TOLERANCE = 1e-4  # absolute, on losses of about 5


def losses(output) -> dict[int, float]:
    """step → loss of the progress lines rank 0 wrote to progress.jsonl."""
    events = [json.loads(line) for line in (output / "progress.jsonl").read_text().splitlines()]
    return {event["step"]: event["loss"] for event in events if event["type"] == "progress"}


def checkpoint_steps(output) -> list[int]:
    """The steps of the checkpoint events in progress.jsonl."""
    events = [json.loads(line) for line in (output / "progress.jsonl").read_text().splitlines()]
    return [event["step"] for event in events if event["type"] == "checkpoint"]


@pytest.mark.timeout(600)
def test_two_processes_train_the_one_process_run(bundle, tmp_path):
    config, data, alone = make_job(tmp_path / "one", {**reference_config(**HYPERPARAMETERS), "merge_adapter": False})
    single = run_program(bundle, config, data, alone)
    assert single.returncode == 0, single.stderr
    parallel = tmp_path / "two"
    assert launch_processes(command(bundle, config, data, parallel), 2) == 0
    one, two = losses(alone), losses(parallel)
    assert sorted(two) == [1, 2, 3, 4, 5, 6]
    assert max(abs(one[step] - two[step]) for step in one) < LOSS_TOLERANCE, (one, two)
    assert checkpoint_steps(parallel) == [3]  # written once, by rank 0
    assert (parallel / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.timeout(600)
def test_two_processes_stop_together_at_the_budget_and_resume_exactly(bundle, tmp_path):
    config, data, alone = make_job(tmp_path / "one", {**reference_config(**HYPERPARAMETERS), "merge_adapter": False})
    assert run_program(bundle, config, data, alone).returncode == 0
    parallel = tmp_path / "two"
    stopped = launch_processes([*command(bundle, config, data, parallel), "--time-budget", "0.5"], 2)
    assert stopped == EXIT_INTERRUPTED  # both ranks checkpointed after the same step and stopped
    assert sorted(losses(parallel)) == [1] and checkpoint_steps(parallel) == [1]
    assert launch_processes(command(bundle, config, data, parallel), 2) == 0
    assert abs(losses(parallel)[6] - losses(alone)[6]) < LOSS_TOLERANCE
