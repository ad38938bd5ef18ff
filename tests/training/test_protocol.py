"""The progress protocol: what the Studio parses from the program's output, and how failures end."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from tests.support.training import MODULE, PROJECT_ROOT, make_job, reference_config, run_job, run_program
from trainer.__main__ import describe_failure
from trainer.protocol import EVENT_TYPES, PROGRESS_KEYS, PROGRESS_PREFIX, Reporter, parse_progress_line

NUMBER = (int, float)
# The keys each event type must fill (others may be null); every event carries all of PROGRESS_KEYS.
REQUIRED = {
    "start": {"step": int, "total_steps": int, "epoch": NUMBER, "base_model": str, "method": str},
    "progress": {"step": int, "total_steps": int, "epoch": NUMBER, "loss": NUMBER, "learning_rate": NUMBER,
                 "tokens_per_second": NUMBER, "eta_seconds": NUMBER},
    "eval": {"step": int, "total_steps": int, "epoch": NUMBER, "eval_loss": NUMBER},
    "checkpoint": {"step": int, "total_steps": int, "epoch": NUMBER, "path": str},
    "done": {"step": int, "total_steps": int, "loss": NUMBER, "eta_seconds": NUMBER, "outputs": dict},
    "error": {"message": str},
}


def assert_follows_protocol(event: dict) -> None:
    """Fail unless event has a known type, every protocol key, and the keys its type needs, well typed."""
    assert event["type"] in EVENT_TYPES
    assert set(PROGRESS_KEYS) <= set(event)
    for key, kind in REQUIRED[event["type"]].items():
        assert isinstance(event[key], kind) and not isinstance(event[key], bool), (key, event)


def test_a_progress_line_parses_into_its_event():
    line = PROGRESS_PREFIX + json.dumps({"type": "progress", "step": 3, "loss": 1.5}) + "\n"
    assert parse_progress_line(line) == {"type": "progress", "step": 3, "loss": 1.5}


def test_a_progress_line_may_follow_a_log_timestamp():
    line = "2026-01-02T03:04:05.678Z " + PROGRESS_PREFIX + '{"type": "done", "step": 9}'
    assert parse_progress_line(line) == {"type": "done", "step": 9}


@pytest.mark.parametrize("line", [
    "Loading checkpoint shards: 100%",
    PROGRESS_PREFIX + "{not json",
    PROGRESS_PREFIX + '["progress"]',
    PROGRESS_PREFIX + '{"type": "rumour", "step": 1}',
    '{"type": "progress", "step": 1}',
])
def test_other_lines_are_not_events(line):
    assert parse_progress_line(line) is None


def test_reporter_prints_flushed_lines_with_null_for_non_finite_numbers(tmp_path, capsys):
    reporter = Reporter(tmp_path / "progress.jsonl")
    reporter.emit("progress", step=1, loss=math.nan, learning_rate=math.inf)
    event = parse_progress_line(capsys.readouterr().out)
    assert event["loss"] is None and event["learning_rate"] is None and event["step"] == 1
    assert json.loads((tmp_path / "progress.jsonl").read_text()) == event


@pytest.mark.xdist_group("reference_run")
def test_every_line_of_a_run_follows_the_protocol(reference_run):
    assert {event["type"] for event in reference_run.events} == {"start", "progress", "eval", "checkpoint", "done"}
    for event in reference_run.events:
        assert_follows_protocol(event)
    steps = [event["step"] for event in reference_run.events]
    assert steps == sorted(steps)


def test_a_bad_config_ends_with_an_error_line_and_a_nonzero_exit(tmp_path):
    finished = run_job(MODULE, tmp_path, reference_config(learning_rate="fast"))
    assert finished.returncode == 1
    assert [event["type"] for event in finished.events] == ["error"]
    assert_follows_protocol(finished.events[0])
    assert finished.events[0]["message"] == "hyperparameters.learning_rate must be float, not 'fast'."


def test_a_bad_dataset_line_is_reported_with_its_line_number(bundle, tmp_path):
    config, data, output = make_job(tmp_path, reference_config())
    (data / "train.jsonl").write_text('{"text": "fine"}\n\n{"text": oops}\n')
    finished = run_program(bundle, config, data, output)
    assert finished.returncode == 1
    assert finished.events[-1]["message"].startswith("train.jsonl line 3: not valid JSON")


def test_qlora_without_cuda_fails_at_once_with_a_clear_error(bundle, tmp_path):
    finished = run_job(bundle, tmp_path, {**reference_config(), "method": "qlora"})
    assert finished.returncode == 1
    assert [event["type"] for event in finished.events] == ["error"]
    assert "QLoRA needs a CUDA GPU" in finished.events[0]["message"]
    assert not (tmp_path / "out" / "checkpoints").exists()


@pytest.mark.parametrize("how", ["bundle", "module"])
def test_a_bad_command_line_ends_with_an_error_line_too(request, how):
    program = request.getfixturevalue("bundle") if how == "bundle" else MODULE
    done = subprocess.run([sys.executable, *program, "--config", "c.json"], capture_output=True, text=True,
                          timeout=120, cwd=PROJECT_ROOT)
    event = parse_progress_line(done.stdout)
    assert done.returncode == 2
    assert event["type"] == "error" and "--data" in event["message"]


@pytest.mark.parametrize("error", [torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
                                   RuntimeError("CUDA error: out of memory"),
                                   RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate")])
def test_out_of_memory_errors_suggest_how_to_need_less(error):
    message = describe_failure(error)
    assert "batch_size" in message and "max_seq_length" in message and "QLoRA" in message
