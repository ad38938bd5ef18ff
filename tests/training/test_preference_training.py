"""The training program on preference pairs: exact resume after a kill; pairs and methods that do not match."""
from __future__ import annotations

import json
import subprocess

import pytest

from tests.support.data import learnable_chats, learnable_pairs
from tests.support.training import command, make_job, run_job, run_program
from trainer.config import TINY_MODEL_ID, parse_config
from trainer.errors import ConfigError
from trainer.protocol import parse_progress_line

DPO = {"base_model": TINY_MODEL_ID, "method": "dpo", "hyperparameters": {
    "max_steps": 4, "batch_size": 4, "gradient_accumulation_steps": 2, "max_seq_length": 64, "lora_r": 4,
    "lora_alpha": 8, "learning_rate": 0.005, "beta": 0.5, "logging_steps": 2, "eval_steps": 2, "save_steps": 2,
    "validation_split": 0.2, "seed": 4}}
# Timing differs between runs; everything else a run reports must not.
TIMING = ("tokens_per_second", "eta_seconds")


def history(output, after: int) -> list[dict]:
    """The progress and eval events a run wrote for the steps after `after`, without their timing."""
    lines = (output / "progress.jsonl").read_text().splitlines()
    return [{key: value for key, value in event.items() if key not in TIMING} for event in map(json.loads, lines)
            if event["type"] in ("progress", "eval") and event["step"] > after]


def test_dpo_resumed_after_a_kill_ends_with_the_same_metrics_as_an_uninterrupted_run(bundle, tmp_path):
    pairs = learnable_pairs(30, seed=6)
    whole = run_job(bundle, tmp_path / "whole", DPO, pairs)
    assert whole.returncode == 0, whole.stderr
    config, data, output = make_job(tmp_path / "killed", DPO, pairs)
    with subprocess.Popen(command(bundle, config, data, output), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True) as killed:
        for line in killed.stdout:
            if (parse_progress_line(line) or {}).get("type") == "checkpoint":
                killed.kill()
                break
    assert killed.returncode < 0
    resumed = run_program(bundle, config, data, output)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.events[0]["resumed_from_step"] == 2
    expected, found = whole.events[-1], resumed.events[-1]
    assert found["type"] == "done" and found["loss"] == expected["loss"] and found["eval_loss"] == expected["eval_loss"]
    after_kill = history(output, after=2)
    assert after_kill == history(whole.output, after=2) and len(after_kill) == 2
    assert {"reward_margin", "reward_accuracy", "rewards_chosen"} <= set(after_kill[0])
    assert "eval_reward_accuracy" in after_kill[-1]


def test_sft_on_pairs_and_dpo_on_chats_stop_with_a_data_error_naming_the_method(bundle, tmp_path):
    sft = run_job(bundle, tmp_path / "sft", {**DPO, "method": "lora"}, learnable_pairs(12))
    assert sft.returncode == 1 and "use method dpo or orpo" in sft.of_type("error")[0]["message"]
    dpo = run_job(bundle, tmp_path / "dpo", DPO, learnable_chats(12))
    assert dpo.returncode == 1 and "DPO and ORPO learn from preference pairs" in dpo.of_type("error")[0]["message"]


def test_packing_is_refused_for_preference_methods():
    with pytest.raises(ConfigError, match="packing is not available for dpo and orpo"):
        parse_config({**DPO, "hyperparameters": {"packing": True}})
    assert parse_config({**DPO, "method": "orpo"}).adapter == "lora"
    assert parse_config({**DPO, "hyperparameters": {"adapter": "full"}}).adapter == "full"
