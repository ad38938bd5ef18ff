"""Samples that judge a run: answers to a few prompts from the tuned model and from its base, side by side.

The base answers come from the same model with the adapter disabled (no second copy in memory); a full
fine-tune has no adapter to disable, so its base answers are taken before training starts.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from trainer import records
from trainer.data import read_jsonl, render_chat

SAMPLES_FILE = "samples.jsonl"
MAX_NEW_TOKENS = 128
SAMPLE_SEED = 1234  # decoding is greedy; the seed is fixed too, so any sampling a model forces is repeatable


def data_prompts(path: Path, count: int) -> list[dict]:
    """The first count prompts of a dataset file with their reference answers (text records have none)."""
    found = []
    for _number, record in read_jsonl(path) if path.is_file() else []:
        record_format = records.detect(record)
        if record_format in (None, "text"):
            continue
        messages = [{"role": m["role"], "content": m["content"]} for m in records.to_messages(record, record_format)]
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=0)
        if last and any(m["role"] == "user" for m in messages[:last]):
            found.append({"messages": messages[:last], "reference": messages[last]["content"]})
        if len(found) >= count:
            break
    return found


def choose_prompts(config, data_dir: Path) -> list[dict]:
    """The user's prompts when the job gave some, else the validation file's first ones, else the training file's."""
    if config.sample_prompts:
        return [{"messages": messages, "reference": None} for messages in config.sample_prompts]
    if config.sample_count == 0:
        return []
    names = [config.validation_file] if config.validation_file else []
    for name in [*names, config.train_file]:
        found = data_prompts(data_dir / name, config.sample_count)
        if found:
            return found
    return []


def generate(run, messages: list[dict]) -> dict:
    """One greedy answer to a conversation: its text, how many tokens it took and how long."""
    tokenizer, device = run.tokenizer, run.hardware.device
    text = render_chat(tokenizer, messages, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][:, -run.hp.max_seq_length:]
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad(), run.autocast():
        torch.manual_seed(SAMPLE_SEED)
        output = run.model.generate(input_ids=ids.to(device), attention_mask=torch.ones_like(ids).to(device),
                                    max_new_tokens=MAX_NEW_TOKENS, do_sample=False, use_cache=True,
                                    pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    new = output[0, ids.shape[1]:].tolist()
    answer = tokenizer.decode(new, skip_special_tokens=True).strip()
    return {"text": answer, "tokens": len(new), "seconds": round(time.perf_counter() - started, 3)}


def answers(run, prompts: list[dict], with_adapter: bool = True) -> list[dict]:
    """The model's answers to each prompt; with_adapter False answers as the base model (adapter disabled)."""
    was_training = run.model.training
    run.model.eval()
    try:
        if with_adapter or not hasattr(run.model, "disable_adapter"):
            return [generate(run, prompt["messages"]) for prompt in prompts]
        with run.model.disable_adapter():
            return [generate(run, prompt["messages"]) for prompt in prompts]
    finally:
        run.model.train(was_training)


def base_answers_before_training(run, data_dir: Path) -> list[dict] | None:
    """For a full fine-tune starting from step 0: the base model's answers, taken while it still is the base."""
    if run.config.adapter != "full" or run.step != 0:
        return None
    return answers(run, choose_prompts(run.config, data_dir))


def write_samples(run, data_dir: Path, base_first: list[dict] | None = None) -> int:
    """Answer the chosen prompts with the tuned and the base model into samples.jsonl; returns how many."""
    prompts = choose_prompts(run.config, data_dir)
    if not prompts:
        return 0
    tuned = answers(run, prompts)
    full = run.config.adapter == "full"
    base = base_first if full else answers(run, prompts, with_adapter=False)
    lines = []
    for index, prompt in enumerate(prompts):
        before = base[index] if base else {"text": None, "tokens": None, "seconds": None}
        lines.append(json.dumps({**prompt, "base": before["text"], "tuned": tuned[index]["text"],
                                 "base_tokens": before["tokens"], "tuned_tokens": tuned[index]["tokens"],
                                 "base_seconds": before["seconds"], "tuned_seconds": tuned[index]["seconds"]}))
    partial = run.output / f".{SAMPLES_FILE}.partial"
    partial.write_text("".join(line + "\n" for line in lines))
    partial.replace(run.output / SAMPLES_FILE)
    print(f"Wrote {len(lines)} samples (tuned and base answers) to {SAMPLES_FILE}.", file=sys.stderr, flush=True)
    return len(lines)
