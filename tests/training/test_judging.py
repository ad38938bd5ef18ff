"""Judging a run inside the program: samples (tuned vs base), validation accuracy and perplexity, kept checkpoints,
and a run that continues from an earlier run's adapter."""
from __future__ import annotations

import difflib
import json
import math

import pytest

from tests.support.data import COUNTING, GREETING
from tests.support.training import copy_init_adapter, reference_config, run_job
from trainer.config import ConfigError, parse_config

shared_run = pytest.mark.xdist_group("reference_run")


def similarity(answer: str | None, reference: str) -> float:
    """How close an answer is to its reference, 0 to 1."""
    return difflib.SequenceMatcher(None, answer or "", reference).ratio()


@shared_run
def test_samples_hold_tuned_and_base_answers_and_the_tuned_ones_match_the_references(reference_run):
    lines = (reference_run.output / "samples.jsonl").read_text().splitlines()
    samples = [json.loads(line) for line in lines]
    assert len(samples) == 8
    for sample in samples:
        assert sample["messages"][-1]["role"] == "user" and sample["reference"] in (GREETING, COUNTING)
        assert sample["tuned_tokens"] > 0 and sample["base_tokens"] > 0 and sample["tuned_seconds"] >= 0
        assert sample["base"] != sample["tuned"]
    tuned = sum(similarity(s["tuned"], s["reference"]) for s in samples) / len(samples)
    base = sum(similarity(s["base"], s["reference"]) for s in samples) / len(samples)
    assert tuned > 0.9 and base < 0.5, (tuned, base)
    assert reference_run.events[-1]["outputs"]["samples"] == 8


@shared_run
def test_evaluations_report_mean_token_accuracy_and_perplexity(reference_run):
    evals = reference_run.of_type("eval")
    accuracies = [event["eval_accuracy"] for event in evals]
    assert all(0 <= a <= 1 for a in accuracies) and accuracies[-1] > accuracies[0] and accuracies[-1] > 0.8
    for event in evals:
        assert event["eval_perplexity"] == pytest.approx(math.exp(event["eval_loss"]), rel=1e-3)


@shared_run
def test_kept_checkpoints_are_listed_with_their_metrics_and_adapters(reference_run):
    output = reference_run.output
    listed = json.loads((output / "checkpoints.json").read_text())
    assert [c["step"] for c in listed] == [40, 50, 60]
    assert [c["artifact"] for c in listed] == ["checkpoint_adapters/step-00000040",
                                               "checkpoint_adapters/step-00000050", "adapter"]
    for checkpoint in listed:
        assert set(checkpoint["metrics"]) >= {"train_loss", "valid_loss", "valid_mean_token_accuracy"}
        assert (output / checkpoint["artifact"] / "adapter_model.safetensors").is_file()
    assert listed[-1]["metrics"]["valid_loss"] == reference_run.of_type("eval")[-1]["eval_loss"]
    assert [e["metrics"]["train_loss"] for e in reference_run.of_type("checkpoint")][-1] is not None


@shared_run
def test_a_run_started_from_an_earlier_adapter_continues_from_its_loss(reference_run, bundle, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    copy_init_adapter(reference_run.output / "checkpoint_adapters" / "step-00000050", data)
    prompts = [[{"role": "user", "content": "Please greet the comet."}]]
    config = {**reference_config(max_steps=5, logging_steps=1), "init_adapter": True, "sample_prompts": prompts}
    continued = run_job(bundle, tmp_path, config)
    assert continued.returncode == 0, continued.stderr
    first_loss = continued.of_type("progress")[0]["loss"]
    earlier = [e["loss"] for e in reference_run.of_type("progress")]
    assert first_loss < 0.3 * earlier[0] and first_loss == pytest.approx(earlier[-1], abs=0.3)
    samples = [json.loads(line) for line in (continued.output / "samples.jsonl").read_text().splitlines()]
    assert samples == [{**samples[0], "messages": prompts[0], "reference": None}] and samples[0]["tuned"] == GREETING


@pytest.mark.parametrize(("raw", "message"), [
    ({"sample_count": 99}, "sample_count must be an integer from 0 to 32"),
    ({"sample_prompts": "hi"}, "sample_prompts must be a list"),
    ({"sample_prompts": [[{"role": "user", "content": "a"}], []]}, "sample_prompts[1]: must be a non-empty"),
    ({"sample_prompts": [[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]]},
     "sample_prompts[0]: the last message must be the user's"),
])
def test_sample_settings_are_checked_with_the_bad_entry_named(raw, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config({"base_model": "tiny-random-llama", **raw})
