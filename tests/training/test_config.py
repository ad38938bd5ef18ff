"""The config file: defaults, validation, and the choices the program derives (precision, LoRA targets)."""
from __future__ import annotations

import re

import pytest

from trainer.config import Hyperparameters, choose_precision, load_config, parse_config
from trainer.errors import ConfigError
from trainer.models import LLAMA_STYLE_TARGETS, lora_targets


def test_a_minimal_config_gets_every_default():
    config = parse_config({"base_model": "Qwen/Qwen2.5-0.5B-Instruct"})
    assert config.method == "lora" and config.train_file == "train.jsonl" and config.precision == "auto"
    assert config.hyperparameters == Hyperparameters()
    assert config.hyperparameters.train_on_prompt is False and config.hyperparameters.packing is False


@pytest.mark.parametrize("raw, message", [
    ({}, "base_model is required"),
    ({"base_model": "m", "method": "kto"}, "method must be one of lora, qlora, full, dpo, orpo"),
    ({"base_model": "m", "precision": "fp8"}, "precision must be one of auto, fp32, fp16, bf16"),
    ({"base_model": "m", "epochs": 3}, "Unknown config keys: epochs"),
    ({"base_model": "m", "train_file": "../secrets.jsonl"}, "train_file must be a file name inside the data folder"),
    ({"base_model": "m", "hyperparameters": {"lora_rank": 8}}, "Unknown hyperparameters: lora_rank"),
    ({"base_model": "m", "hyperparameters": {"batch_size": 0}}, "batch_size must be a number greater than 0"),
    ({"base_model": "m", "hyperparameters": {"batch_size": 2.5}}, "batch_size must be int"),
    ({"base_model": "m", "hyperparameters": {"epochs": True}}, "epochs must be int"),
    ({"base_model": "m", "hyperparameters": {"packing": "yes"}}, "packing must be bool"),
    ({"base_model": "m", "hyperparameters": {"warmup_ratio": 1.5}}, "warmup_ratio must be a number in [0, 1)"),
    ({"base_model": "m", "hyperparameters": {"lr_scheduler": "exp"}}, "lr_scheduler must be one of linear"),
    ({"base_model": "m", "hyperparameters": {"target_modules": [""]}}, "target_modules must be a list of"),
    ({"base_model": "m", "hyperparameters": []}, "hyperparameters must be a JSON object"),
])
def test_a_bad_config_is_refused_with_a_message_naming_the_problem(raw, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(raw)


def test_integers_are_accepted_where_numbers_are_expected():
    config = parse_config({"base_model": "m", "hyperparameters": {"lora_dropout": 0, "max_grad_norm": 1}})
    assert config.hyperparameters.lora_dropout == 0 and config.hyperparameters.max_grad_norm == 1


def test_an_unreadable_config_file_is_a_config_error(tmp_path):
    (tmp_path / "config.json").write_text("{base_model: nope}")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(tmp_path / "config.json")


@pytest.mark.parametrize("capability, requested, expected", [
    (None, "auto", "fp32"),          # a CPU
    ((7, 5), "auto", "fp16"),        # Kaggle's T4: no bf16
    ((6, 0), "auto", "fp16"),        # Kaggle's P100
    ((8, 0), "auto", "bf16"),        # A100
    ((9, 0), "fp16", "fp16"),        # asked for explicitly
    ((7, 5), "fp32", "fp32"),
])
def test_precision_follows_the_gpu_capability(capability, requested, expected):
    assert choose_precision(capability, requested) == expected


@pytest.mark.parametrize("capability, requested, message", [
    ((7, 5), "bf16", "compute capability 7.5) has no bf16"),
    (None, "fp16", "needs a CUDA GPU"),
])
def test_impossible_precisions_are_refused(capability, requested, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        choose_precision(capability, requested)


@pytest.mark.parametrize("model_type, expected", [
    ("llama", list(LLAMA_STYLE_TARGETS)),
    ("qwen2", list(LLAMA_STYLE_TARGETS)),
    ("gemma2", list(LLAMA_STYLE_TARGETS)),
    ("phi3", ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]),
    ("some_new_architecture", "all-linear"),
])
def test_lora_targets_every_projection_of_the_architecture(model_type, expected):
    assert lora_targets(Hyperparameters(), model_type) == expected


def test_configured_lora_targets_win():
    hp = Hyperparameters(target_modules=["q_proj", "v_proj"])
    assert lora_targets(hp, "phi3") == ["q_proj", "v_proj"]
