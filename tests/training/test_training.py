"""End-to-end runs of the training program on the tiny model: learning, outputs, resuming, every method."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess

import peft
import pytest
import safetensors.torch
import torch
import transformers

from tests.support.data import COUNTING, GREETING
from tests.support.training import (
    MODULE,
    REFERENCE_HYPERPARAMETERS,
    command,
    make_job,
    reference_config,
    run_job,
    run_program,
)
from trainer.data import render_chat
from trainer.models import LLAMA_STYLE_TARGETS, build_tiny_model, build_tiny_tokenizer
from trainer.protocol import EXIT_INTERRUPTED, parse_progress_line

shared_run = pytest.mark.xdist_group("reference_run")


def progress_losses(events: list[dict]) -> list[float]:
    """The loss of each progress event, in order."""
    return [event["loss"] for event in events if event["type"] == "progress"]


def greedy_answer(model, tokenizer, prompt: str) -> str:
    """The model's greedy reply to one user turn, without special tokens."""
    text = render_chat(tokenizer, [{"role": "user", "content": prompt}], add_generation_prompt=True)
    inputs = tokenizer(text, add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=24, do_sample=False,
                                   eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(generated[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()


@shared_run
def test_lora_training_lowers_the_loss_by_a_large_margin(reference_run):
    losses = progress_losses(reference_run.events)
    evals = [event["eval_loss"] for event in reference_run.of_type("eval")]
    assert losses[0] > 4.5  # an untrained model guesses among ~260 tokens: ln(263) ≈ 5.6
    assert losses[-1] < 0.3 * losses[0]
    assert evals[-1] < 0.3 * losses[0] and evals[-1] < evals[0]


@shared_run
def test_run_reports_start_checkpoints_evaluations_and_done_in_order(reference_run):
    events = reference_run.events
    assert events[0]["type"] == "start" and events[-1]["type"] == "done"
    assert events[0]["train_examples"] == 180 and events[0]["eval_examples"] == 20
    assert [e["step"] for e in reference_run.of_type("checkpoint")] == [10, 20, 30, 40, 50]
    assert [e["step"] for e in reference_run.of_type("eval")] == [20, 40, 60]
    assert [e["step"] for e in reference_run.of_type("progress")] == list(range(5, 61, 5))
    assert events[-1]["step"] == events[-1]["total_steps"] == REFERENCE_HYPERPARAMETERS["max_steps"]


@shared_run
def test_run_writes_adapter_tokenizer_metrics_and_resolved_arguments(reference_run):
    output = reference_run.output
    adapter = safetensors.torch.load_file(output / "adapter" / "adapter_model.safetensors")
    assert adapter and all("lora_" in name for name in adapter)
    assert (output / "adapter" / "tokenizer.json").is_file()
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["step"] == 60 and metrics["loss"] == reference_run.events[-1]["loss"]
    assert [e["step"] for e in metrics["history"] if e["type"] == "eval"] == [20, 40, 60]
    arguments = json.loads((output / "training_args.json").read_text())
    assert arguments["config"]["hyperparameters"]["lora_dropout"] == 0.05  # a default, filled in
    assert arguments["resolved"]["lora_target_modules"] == sorted(LLAMA_STYLE_TARGETS)
    logged = [json.loads(line) for line in (output / "progress.jsonl").read_text().splitlines()]
    assert logged == reference_run.events
    assert sorted(p.name for p in (output / "checkpoints").iterdir()) == ["step-00000040", "step-00000050"]


@shared_run
def test_saved_adapter_loads_with_peft_and_generates_the_learned_answers(reference_run):
    tokenizer = transformers.AutoTokenizer.from_pretrained(reference_run.output / "adapter")
    base = build_tiny_model(tokenizer)
    assert greedy_answer(base, tokenizer, "Please greet the comet.") != GREETING
    model = peft.PeftModel.from_pretrained(base, reference_run.output / "adapter").eval()
    assert greedy_answer(model, tokenizer, "Please greet the comet.") == GREETING
    assert greedy_answer(model, tokenizer, "Count for the comet.") == COUNTING


@shared_run
def test_merged_model_computes_what_base_plus_adapter_computes(reference_run):
    tokenizer = build_tiny_tokenizer()
    adapted = peft.PeftModel.from_pretrained(build_tiny_model(tokenizer), reference_run.output / "adapter")
    merged = transformers.AutoModelForCausalLM.from_pretrained(reference_run.output / "merged")
    ids = tokenizer("<|user|>\nCount for the comet.<|end|>\n<|assistant|>\n", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(merged.eval()(ids).logits, adapted.eval()(ids).logits, atol=1e-4, rtol=1e-4)


@shared_run
def test_interrupted_run_resumes_from_its_checkpoint_to_the_same_end(reference_run, bundle, tmp_path):
    config, data, output = make_job(tmp_path, reference_config())
    with subprocess.Popen(command(bundle, config, data, output), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True) as killed:
        for line in killed.stdout:
            if (parse_progress_line(line) or {}).get("type") == "checkpoint":
                killed.kill()
                break
    killed_events = [json.loads(line) for line in (output / "progress.jsonl").read_text().splitlines()]
    assert killed.returncode < 0 and "done" not in [e["type"] for e in killed_events]

    resumed = run_program(bundle, config, data, output)
    start, done = resumed.events[0], resumed.events[-1]
    assert resumed.returncode == 0, resumed.stderr
    assert start["resumed_from_step"] >= 10 and start["step"] == start["resumed_from_step"]
    assert resumed.of_type("progress")[0]["step"] == start["step"] + 5
    assert done["step"] == reference_run.events[-1]["step"] == 60
    assert done["loss"] == pytest.approx(reference_run.events[-1]["loss"], rel=0.1, abs=0.02)
    assert done["eval_loss"] == pytest.approx(reference_run.events[-1]["eval_loss"], rel=0.1, abs=0.02)


def test_sigterm_checkpoints_the_current_step_and_exits_to_be_resumed(bundle, tmp_path):
    config, data, output = make_job(tmp_path, reference_config(max_steps=10_000, save_steps=10_000))
    with subprocess.Popen(command(bundle, config, data, output), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as stopped:
        for line in stopped.stdout:
            event = parse_progress_line(line) or {}
            if event.get("type") == "progress" and event["step"] >= 5:
                stopped.send_signal(signal.SIGTERM)
                break
        rest = [parse_progress_line(line) for line in stopped.stdout]
    assert stopped.returncode == EXIT_INTERRUPTED, stopped.stderr.read()
    checkpoint = next(event for event in rest if event and event["type"] == "checkpoint")
    assert checkpoint["step"] >= 5 and (output / checkpoint["path"]).is_dir()
    assert not any(event and event["type"] in ("done", "error") for event in rest)


@shared_run
def test_resume_refuses_checkpoints_of_another_config(reference_run, bundle, tmp_path):
    shutil.copytree(reference_run.output / "checkpoints", tmp_path / "out" / "checkpoints")
    finished = run_job(bundle, tmp_path, reference_config(learning_rate=0.02))
    assert finished.returncode == 1
    assert "different configuration" in finished.events[-1]["message"]


def test_full_fine_tuning_trains_and_saves_the_whole_model(bundle, tmp_path):
    config = reference_config(max_steps=20, learning_rate=0.003, validation_split=0.0, save_steps=100)
    finished = run_job(bundle, tmp_path, {**config, "method": "full", "merge_adapter": False})
    assert finished.returncode == 0, finished.stderr
    start, losses = finished.events[0], progress_losses(finished.events)
    assert start["trainable_parameters"] == start["total_parameters"]
    assert losses[-1] < 0.5 * losses[0]
    model = transformers.AutoModelForCausalLM.from_pretrained(finished.output / "model")
    assert sum(p.numel() for p in model.parameters()) == start["total_parameters"]


# Run as `python -m trainer` from the checkout, where the other runs use the bundle.
def test_packed_training_lowers_the_loss(tmp_path):
    config = reference_config(max_steps=40, packing=True, max_seq_length=512, batch_size=1,
                              gradient_accumulation_steps=1, validation_split=0.0, save_steps=100)
    finished = run_job(MODULE, tmp_path, {**config, "merge_adapter": False})
    assert finished.returncode == 0, finished.stderr
    start, losses = finished.events[0], progress_losses(finished.events)
    assert 0 < start["packed_sequences"] < start["train_examples"] / 6
    assert losses[-1] < 0.4 * losses[0]
