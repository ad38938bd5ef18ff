"""The training program on preference pairs: exact resume after a kill; DPO continuing an SFT adapter (SFT -> DPO),
whose reference is the SFT model; pairs and methods that do not match."""
from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import peft
import pytest
import safetensors
import torch

from tests.support.data import learnable_chats, learnable_pairs
from tests.support.training import command, copy_init_adapter, make_job, reference_config, run_job, run_program
from trainer import records
from trainer.config import TINY_MODEL_ID, parse_config
from trainer.errors import ConfigError
from trainer.models import Hardware, build_tiny_model, build_tiny_tokenizer
from trainer.preference import PreferenceRun, sequence_logps, tokenize_pair
from trainer.program import load_prepared_model
from trainer.protocol import Reporter, parse_progress_line

DPO = {"base_model": TINY_MODEL_ID, "method": "dpo", "hyperparameters": {
    "max_steps": 4, "batch_size": 4, "gradient_accumulation_steps": 2, "max_seq_length": 64, "lora_r": 4,
    "lora_alpha": 8, "learning_rate": 0.005, "beta": 0.5, "logging_steps": 2, "eval_steps": 2, "save_steps": 2,
    "validation_split": 0.2, "seed": 4}}
CPU = Hardware(torch.device("cpu"), "fp32", "cpu")
# Timing differs between runs; everything else a run reports must not.
TIMING = ("tokens_per_second", "eta_seconds")


def history(output, after: int) -> list[dict]:
    """The progress and eval events a run wrote for the steps after `after`, without their timing."""
    lines = (output / "progress.jsonl").read_text().splitlines()
    return [{key: value for key, value in event.items() if key not in TIMING} for event in map(json.loads, lines)
            if event["type"] in ("progress", "eval") and event["step"] > after]


def killed_and_resumed(bundle, folder: Path, config: dict, pairs: list[dict], adapter: Path | None = None):
    """The run killed at its first checkpoint, then run again on the same folders to the end."""
    config_path, data, output = make_job(folder, config, pairs)
    if adapter is not None:
        copy_init_adapter(adapter, data)
    with subprocess.Popen(command(bundle, config_path, data, output), stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True) as killed:
        for line in killed.stdout:
            if (parse_progress_line(line) or {}).get("type") == "checkpoint":
                killed.kill()
                break
    assert killed.returncode < 0
    resumed = run_program(bundle, config_path, data, output)
    assert resumed.returncode == 0, resumed.stderr
    return resumed


def assert_same_end(whole, resumed, killed_at: int = 2) -> list[dict]:
    """The resumed run continued from killed_at and ended as the uninterrupted one; its history after the kill."""
    assert resumed.events[0]["resumed_from_step"] == killed_at
    expected, found = whole.events[-1], resumed.events[-1]
    assert found["type"] == "done" and found["loss"] == expected["loss"] and found["eval_loss"] == expected["eval_loss"]
    after_kill = history(resumed.output, after=killed_at)
    assert after_kill == history(whole.output, after=killed_at) and after_kill
    return after_kill


def test_dpo_resumed_after_a_kill_ends_with_the_same_metrics_as_an_uninterrupted_run(bundle, tmp_path):
    pairs = learnable_pairs(30, seed=6)
    whole = run_job(bundle, tmp_path / "whole", DPO, pairs)
    assert whole.returncode == 0, whole.stderr
    after_kill = assert_same_end(whole, killed_and_resumed(bundle, tmp_path / "killed", DPO, pairs))
    assert len(after_kill) == 2
    assert {"reward_margin", "reward_accuracy", "rewards_chosen"} <= set(after_kill[0])
    assert "eval_reward_accuracy" in after_kill[-1]


@pytest.fixture(scope="module")
def sft_adapter(bundle, tmp_path_factory) -> Path:
    """The adapter of a short SFT run on the learnable chats, trained with dropout (which a DPO run switches off)."""
    config = {**reference_config(max_steps=20, lora_dropout=0.1, validation_split=0.0, save_steps=100),
              "merge_adapter": False, "sample_count": 0}
    finished = run_job(bundle, tmp_path_factory.mktemp("sft"), config)
    assert finished.returncode == 0, finished.stderr
    return finished.output / "adapter"


def sequence_logps_of(model, batch: dict) -> torch.Tensor:
    """A model's summed log-probability of each sequence's answer tokens."""
    with torch.no_grad():
        logits = model.eval()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return sequence_logps(logits, batch["labels"])[0]


def test_dpo_from_an_sft_adapter_takes_the_sft_model_as_its_reference(sft_adapter, tmp_path):
    config = parse_config({**DPO, "init_adapter": True})
    data = tmp_path / "data"
    data.mkdir()
    copy_init_adapter(sft_adapter, data)
    tokenizer = build_tiny_tokenizer()
    model = load_prepared_model(config, data, CPU, tokenizer).train()
    pairs = [tokenize_pair(tokenizer, records.canonical(record, "preference"), 64)[0]
             for record in learnable_pairs(8, seed=5)]
    run = PreferenceRun(config, CPU, model, tokenizer, (pairs, []), tmp_path / "out", Reporter())
    batch = run.batch(pairs)
    reference = run.reference_logps(batch)
    sft = sequence_logps_of(peft.PeftModel.from_pretrained(build_tiny_model(tokenizer), sft_adapter), batch)
    base = sequence_logps_of(build_tiny_model(tokenizer), batch)
    assert torch.allclose(reference, sft, atol=1e-4) and (reference - base).abs().min() > 1, (reference, sft, base)
    assert model.training and model.active_adapter == "default"
    loss = run.loss(batch, len(pairs))
    assert abs(float(loss.detach()) - math.log(2)) < 1e-4, "the policy starts as its reference: every margin 0"
    loss.backward()
    frozen = [p for name, p in model.named_parameters() if ".reference." in name]
    assert frozen and not any(p.requires_grad or p.grad is not None for p in frozen)
    trained = {id(p) for name, p in model.named_parameters() if ".default." in name}
    assert {id(p) for p in run.trainable} == trained == {id(p) for group in run.optimizer.param_groups
                                                         for p in group["params"]}


@pytest.mark.parametrize("change", [{"method": "orpo"}, {"hyperparameters": {**DPO["hyperparameters"],
                                                                            "reference_free": True}}])
def test_orpo_and_reference_free_dpo_continue_the_adapter_without_a_reference_copy(sft_adapter, tmp_path, change):
    data = tmp_path / "data"
    data.mkdir()
    copy_init_adapter(sft_adapter, data)
    model = load_prepared_model(parse_config({**DPO, "init_adapter": True, **change}), data, CPU,
                                build_tiny_tokenizer())
    assert set(model.peft_config) == {"default"} and all(p.requires_grad for n, p in model.named_parameters()
                                                         if "lora_" in n)


def adapter_keys(folder: Path) -> set[str]:
    """The tensor names in an adapter folder's safetensors file."""
    with safetensors.safe_open(str(folder / "adapter_model.safetensors"), "pt") as opened:
        return set(opened.keys())


def test_dpo_from_an_sft_adapter_starts_at_ln_2_saves_only_its_adapter_and_resumes_exactly(bundle, sft_adapter,
                                                                                           tmp_path):
    config = {**DPO, "init_adapter": True, "hyperparameters": {**DPO["hyperparameters"], "logging_steps": 1}}
    pairs = learnable_pairs(30, seed=6)
    config_path, data, output = make_job(tmp_path / "whole", config, pairs)
    copy_init_adapter(sft_adapter, data)
    whole = run_program(bundle, config_path, data, output)
    assert whole.returncode == 0, whole.stderr
    assert abs(whole.of_type("progress")[0]["loss"] - math.log(2)) < 1e-4
    saved = [output / "adapter", *(output / "checkpoint_adapters").iterdir()]
    assert all(adapter_keys(folder) == adapter_keys(sft_adapter) for folder in saved)
    assert not [path for path in output.rglob("*") if "reference" in path.name]
    resumed = killed_and_resumed(bundle, tmp_path / "killed", config, pairs, sft_adapter)
    assert [event["step"] for event in assert_same_end(whole, resumed)] == [3, 4, 4]


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
