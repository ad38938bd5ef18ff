"""Tokens per second of the training program (trainer/) against a transformers Trainer + peft, on one tiny model.

Both train the built-in tiny Llama with the same LoRA settings, hyperparameters and variable-length chat data,
each in its own subprocess on one CPU thread, taking turns, best of a few rounds (a shared machine's other load
slows single runs, not the best of several). Throughput counts real (non-padding) tokens per second of training.
Run with `make bench` or `.venv/bin/python benchmarks/bench_training.py`.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer.bundle import build_bundle  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "bench_training.json"
# One thread each: two-thread kernels of a model this small stall on each other whenever the machine is busy.
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}
HYPERPARAMETERS = {
    "max_steps": 30, "learning_rate": 5e-3, "batch_size": 8, "gradient_accumulation_steps": 1,
    "max_seq_length": 512, "warmup_ratio": 0.05, "lr_scheduler": "cosine", "lora_r": 8, "lora_alpha": 16,
    "lora_dropout": 0.05, "gradient_checkpointing": False, "logging_steps": 10, "save_steps": 1000, "seed": 7,
}
WORDS = ("model", "data", "token", "river", "stone", "cloud", "graph", "light", "sound", "water", "paper", "train")


def chat_records(count: int, seed: int = 0) -> list[dict]:
    """Conversations of one to three turns whose lengths vary widely (a few tokens to several hundred)."""
    rng = random.Random(seed)

    def text(low: int, high: int) -> str:
        """Between 2 and high + 1 words, mostly few (log-normal)."""
        return " ".join(rng.choice(WORDS) for _ in range(int(rng.lognormvariate(0, 1) * low) % high + 2))

    records = []
    for _ in range(count):
        messages = []
        for _ in range(rng.randint(1, 3)):
            messages += [{"role": "user", "content": text(6, 40)}, {"role": "assistant", "content": text(10, 80)}]
        records.append({"messages": messages})
    return records


def write_inputs(folder: Path, **options) -> tuple[Path, Path]:
    """The dataset, and a config for our program with options (packing, group_by_length) in folder."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in chat_records(400)))
    config = {"base_model": "tiny-random-llama", "method": "lora",
              "hyperparameters": {**HYPERPARAMETERS, **options}}
    (folder / "config.json").write_text(json.dumps(config))
    return folder / "config.json", data


def run_ours(**options) -> float:
    """Our program's tokens per second, from its done event."""
    with tempfile.TemporaryDirectory() as scratch:
        config, data = write_inputs(Path(scratch), **options)
        program = build_bundle(Path(scratch) / "bundle")  # what the Studio runs
        output = subprocess.run([sys.executable, str(program), "--config", str(config), "--data", str(data),
                                 "--output", str(Path(scratch) / "out")],
                                capture_output=True, text=True, check=True, env=ONE_THREAD).stdout
    done = [json.loads(line.split(" ", 1)[1]) for line in output.splitlines() if '"type": "done"' in line]
    return done[-1]["tokens_per_second"]


def run_baseline() -> float:
    """The Trainer baseline's tokens per second, measured in a fresh process like ours."""
    output = subprocess.run([sys.executable, __file__, "--baseline"], capture_output=True, text=True, check=True,
                            env=ONE_THREAD)
    return json.loads(output.stdout.strip().splitlines()[-1])["tokens_per_second"]


def baseline_tokens_per_second() -> float:
    """Train with a plain Trainer, dynamic padding (DataCollatorForSeq2Seq) and peft; count the real tokens."""
    with tempfile.TemporaryDirectory() as scratch:
        trainer, counter = baseline_trainer(Path(scratch))
        started = time.perf_counter()
        trainer.train()
        return round(counter.tokens / (time.perf_counter() - started), 1)


def baseline_trainer(scratch: Path) -> tuple[object, CountingCollator]:
    """A Trainer set up as a plain script would, with our program's model, data and hyperparameters."""
    import peft
    import torch
    import transformers

    from trainer.config import Hyperparameters
    from trainer.data import prepare_file
    from trainer.models import LLAMA_STYLE_TARGETS, build_tiny_model, build_tiny_tokenizer

    hp = Hyperparameters(**HYPERPARAMETERS)
    _, data = write_inputs(scratch)
    tokenizer = build_tiny_tokenizer()
    examples, _ = prepare_file(data / "train.jsonl", tokenizer, hp)
    transformers.set_seed(hp.seed)
    model = peft.get_peft_model(build_tiny_model(tokenizer), peft.LoraConfig(
        r=hp.lora_r, lora_alpha=hp.lora_alpha, lora_dropout=hp.lora_dropout,
        target_modules=list(LLAMA_STYLE_TARGETS), task_type="CAUSAL_LM"))
    counter = CountingCollator(transformers.DataCollatorForSeq2Seq(tokenizer, padding=True))
    arguments = transformers.TrainingArguments(
        output_dir=str(scratch), per_device_train_batch_size=hp.batch_size, max_steps=hp.max_steps,
        gradient_accumulation_steps=hp.gradient_accumulation_steps, learning_rate=hp.learning_rate,
        lr_scheduler_type=hp.lr_scheduler, warmup_steps=hp.warmup_ratio, logging_steps=hp.logging_steps,
        save_strategy="no", report_to="none", seed=hp.seed, disable_tqdm=True, use_cpu=not torch.cuda.is_available())
    dataset = [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]
    return transformers.Trainer(model=model, args=arguments, train_dataset=dataset, data_collator=counter), counter


class CountingCollator:
    """Wraps a collator and counts the real tokens of the batches it makes."""

    def __init__(self, collator):
        """Count for collator."""
        self.collator, self.tokens = collator, 0

    def __call__(self, features):
        """Collate and count."""
        batch = self.collator(features)
        self.tokens += int(batch["attention_mask"].sum())
        return batch


def measure(rounds: int) -> dict:
    """Best tokens/s of each contender over interleaved rounds (best-of damps noise from other processes)."""
    contenders = {
        "trainer": run_baseline,
        "ours_random": lambda: run_ours(group_by_length=False),
        "ours": lambda: run_ours(),
        "ours_packed": lambda: run_ours(packing=True),
    }
    runs = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, contender in contenders.items():
            runs[name].append(contender())
    return {name: {"best": max(values), "median": statistics.median(values), "runs": values}
            for name, values in runs.items()}


def table(results: dict) -> str:
    """The results as a text table with ratios."""
    trainer = results["trainer"]["best"]
    cases = (("no packing, random batches", "ours_random"), ("no packing, length-grouped batches (default)", "ours"),
             ("packing", "ours_packed"))
    rows = [("chat data, LoRA", "ours tok/s", "Trainer tok/s", "ours / Trainer")]
    for label, key in cases:
        ours = results[key]["best"]
        rows.append((label, f"{ours:,.0f}", f"{trainer:,.0f}", f"{ours / trainer:.2f}x"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    packed = results["ours_packed"]["best"]
    gains = (f"packing against our unpacked runs: {packed / results['ours_random']['best']:.2f}x random batches, "
             f"{packed / results['ours']['best']:.2f}x length-grouped batches")
    note = "Trainer: plain transformers Trainer + peft, random batches with dynamic padding (its defaults)."
    return "\n".join([*lines, "", gains, note])


def main() -> None:
    """Run the comparison, print the table and keep the numbers in benchmarks/results/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds taking turns; the best of each is kept")
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline:
        print(json.dumps({"tokens_per_second": baseline_tokens_per_second()}))
        return
    results = measure(args.rounds)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"hyperparameters": HYPERPARAMETERS, "results": results}, indent=2) + "\n")
    print("Training throughput: tiny-random-llama, LoRA, 400 chats of 43 to 512 tokens (median 276), batch 8, "
          f"one CPU thread, best of {args.rounds} rounds\n")
    print(table(results))


if __name__ == "__main__":
    main()
