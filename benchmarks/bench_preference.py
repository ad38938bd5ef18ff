"""DPO throughput and peak memory of the training program (trainer/) against TRL's DPOTrainer, on one tiny model.

Both train the built-in tiny Llama with DPO (sigmoid, β 0.1) on a fresh LoRA adapter with the same settings,
hyperparameters and preference pairs of widely varying lengths, each in its own subprocess on one CPU thread,
taking turns, best of a few rounds. Pairs/s is pairs trained per second of training; tokens/s counts the real
(non-padding) tokens of both sequences of each pair; peak memory is the process's peak resident set (on this CPU
machine; the weights, activations and logits all live there). Run with `make bench` or
`.venv/bin/python benchmarks/bench_preference.py`.
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

RESULTS = ROOT / "benchmarks" / "results" / "bench_preference.json"
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "TRL_EXPERIMENTAL_SILENCE": "1"}
HYPERPARAMETERS = {
    "max_steps": 20, "learning_rate": 5e-4, "batch_size": 8, "gradient_accumulation_steps": 1,
    "max_seq_length": 512, "warmup_ratio": 0.05, "lr_scheduler": "cosine", "lora_r": 8, "lora_alpha": 16,
    "lora_dropout": 0.05, "gradient_checkpointing": False, "logging_steps": 10, "save_steps": 1000, "seed": 7,
    "beta": 0.1, "loss_type": "sigmoid",
}
WORDS = ("model", "data", "token", "river", "stone", "cloud", "graph", "light", "sound", "water", "paper", "train")


def preference_records(count: int, seed: int = 0) -> list[dict]:
    """Pairs whose prompt and answers vary widely in length (a few tokens to a few hundred)."""
    rng = random.Random(seed)

    def text(low: int, high: int) -> str:
        """Between 2 and high + 1 words, mostly few (log-normal)."""
        return " ".join(rng.choice(WORDS) for _ in range(int(rng.lognormvariate(0, 1) * low) % high + 2))

    return [{"prompt": text(6, 40), "chosen": text(10, 60), "rejected": text(10, 60)} for _ in range(count)]


def write_inputs(folder: Path, **options) -> tuple[Path, Path]:
    """The pairs, and a DPO config for our program with options (group_by_length) in folder."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in preference_records(400)))
    config = {"base_model": "tiny-random-llama", "method": "dpo", "hyperparameters": {**HYPERPARAMETERS, **options}}
    (folder / "config.json").write_text(json.dumps(config))
    return folder / "config.json", data


def run_measured(command: list[str]) -> tuple[str, float]:
    """Run command to its end; its stdout and its peak resident set in MB (from the kernel's accounting)."""
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.DEVNULL, env=ONE_THREAD, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            raise RuntimeError(f"{command[1]} exited {process.returncode}")
        out.seek(0)
        return out.read(), usage.ru_maxrss / 1024  # Linux reports kilobytes


def run_ours(**options) -> dict:
    """Our program's pairs/s and tokens/s (from its done event) and peak memory."""
    with tempfile.TemporaryDirectory() as scratch:
        config, data = write_inputs(Path(scratch), **options)
        program = build_bundle(Path(scratch) / "bundle")  # what the Studio runs
        output, peak_mb = run_measured([sys.executable, str(program), "--config", str(config), "--data", str(data),
                                        "--output", str(Path(scratch) / "out")])
    done = [json.loads(line.split(" ", 1)[1]) for line in output.splitlines() if '"type": "done"' in line][-1]
    pairs = HYPERPARAMETERS["max_steps"] * HYPERPARAMETERS["batch_size"]
    return {"pairs_per_second": round(pairs / done["train_seconds"], 2),
            "tokens_per_second": done["tokens_per_second"], "peak_mb": round(peak_mb, 1)}


def run_trl() -> dict:
    """TRL's DPOTrainer figures, measured in a fresh process like ours."""
    output, peak_mb = run_measured([sys.executable, __file__, "--baseline"])
    return {**json.loads(output.strip().splitlines()[-1]), "peak_mb": round(peak_mb, 1)}


def trl_figures() -> dict:
    """Train with TRL's DPOTrainer, as its documentation sets it up for a LoRA run; count pairs and real tokens."""
    import datasets
    import peft
    import torch
    import trl

    from trainer.models import LLAMA_STYLE_TARGETS, build_tiny_model, build_tiny_tokenizer
    from trainer.records import canonical

    hp = HYPERPARAMETERS
    tokenizer = build_tiny_tokenizer()
    pairs = [canonical(record, "preference") for record in preference_records(400)]
    with tempfile.TemporaryDirectory() as scratch:
        arguments = trl.DPOConfig(
            output_dir=scratch, per_device_train_batch_size=hp["batch_size"], max_steps=hp["max_steps"],
            learning_rate=hp["learning_rate"], lr_scheduler_type=hp["lr_scheduler"], warmup_steps=hp["warmup_ratio"],
            beta=hp["beta"], loss_type=[hp["loss_type"]], max_length=hp["max_seq_length"],
            logging_steps=hp["logging_steps"], save_strategy="no", report_to="none", seed=hp["seed"],
            gradient_checkpointing=False, disable_tqdm=True, use_cpu=not torch.cuda.is_available())
        lora = peft.LoraConfig(r=hp["lora_r"], lora_alpha=hp["lora_alpha"], lora_dropout=hp["lora_dropout"],
                               target_modules=list(LLAMA_STYLE_TARGETS), task_type="CAUSAL_LM")
        trainer = trl.DPOTrainer(model=build_tiny_model(tokenizer), args=arguments, peft_config=lora,
                                 processing_class=tokenizer, train_dataset=datasets.Dataset.from_list(pairs))
        counter = CountingCollator(trainer.data_collator)
        trainer.data_collator = counter
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
    return {"pairs_per_second": round(counter.pairs / seconds, 2),
            "tokens_per_second": round(counter.tokens / seconds, 1)}


class CountingCollator:
    """Wraps a collator and counts the pairs and real tokens of the batches it makes."""

    def __init__(self, collator):
        """Count for collator."""
        self.collator, self.pairs, self.tokens = collator, 0, 0

    def __call__(self, features):
        """Collate and count."""
        batch = self.collator(features)
        self.pairs += len(features)
        self.tokens += int(batch["attention_mask"].sum())
        return batch


def measure(rounds: int) -> dict:
    """Each contender's best figures over interleaved rounds (best-of damps noise from other processes)."""
    contenders = {"trl": run_trl, "ours_random": lambda: run_ours(group_by_length=False), "ours": run_ours}
    runs = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, contender in contenders.items():
            runs[name].append(contender())
    return {name: {"pairs_per_second": max(r["pairs_per_second"] for r in values),
                   "tokens_per_second": max(r["tokens_per_second"] for r in values),
                   "peak_mb": statistics.median(r["peak_mb"] for r in values), "runs": values}
            for name, values in runs.items()}


def table(results: dict) -> str:
    """The results as a text table with ratios against TRL."""
    trl = results["trl"]
    rows = [("DPO, LoRA", "pairs/s", "tokens/s", "peak RSS MB", "pairs/s vs TRL", "memory vs TRL")]
    for label, key in (("TRL DPOTrainer", "trl"), ("ours, random batches", "ours_random"),
                       ("ours, length-grouped (default)", "ours")):
        found = results[key]
        rows.append((label, f"{found['pairs_per_second']:,.1f}", f"{found['tokens_per_second']:,.0f}",
                     f"{found['peak_mb']:,.0f}", f"{found['pairs_per_second'] / trl['pairs_per_second']:.2f}x",
                     f"{found['peak_mb'] / trl['peak_mb']:.2f}x"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    note = ("TRL: DPOTrainer with a peft_config (fresh LoRA, reference = adapter disabled), random batches, its "
            "collator's dynamic padding; its time includes what train() does around the steps.")
    return "\n".join([*lines, "", note])


def main() -> None:
    """Run the comparison, print the table and keep the numbers in benchmarks/results/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds taking turns; the best of each is kept")
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline:
        print(json.dumps(trl_figures()))
        return
    results = measure(args.rounds)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"hyperparameters": HYPERPARAMETERS, "results": results}, indent=2) + "\n")
    print("DPO throughput and memory: tiny-random-llama, LoRA r=8, 400 pairs, batch 8 pairs, "
          f"{HYPERPARAMETERS['max_steps']} steps, one CPU thread, best of {args.rounds} rounds\n")
    print(table(results))


if __name__ == "__main__":
    main()
