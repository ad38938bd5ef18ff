"""Tokens per second of the training program with two data-parallel processes against one, same global batch.

Both train the built-in tiny Llama with LoRA on the same chats (benchmarks/bench_training.py's), launched as the
Kaggle bootstrap launches them (one process per GPU; here gloo processes on the CPU, one thread each), taking
turns, best of a few rounds. Throughput counts every rank's real tokens per second of rank 0's training time. On
a CPU the two processes share the machine's cores with each other and with everything else, so the ratio is
noisy and says how much the split costs, not what two T4s give; run it on a machine with two GPUs for that.
Run with `make bench` or `.venv/bin/python benchmarks/bench_data_parallel.py`.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.jobs.backends.kaggle.bootstrap import launch_processes  # noqa: E402
from benchmarks.bench_training import HYPERPARAMETERS, write_inputs  # noqa: E402
from trainer.bundle import build_bundle  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "bench_data_parallel.json"
OPTIONS = {"max_steps": 20, "batch_size": 8, "gradient_accumulation_steps": 2}


def run(processes: int) -> float:
    """The program's tokens per second with this many processes, from rank 0's done event."""
    with tempfile.TemporaryDirectory() as scratch:
        config, data = write_inputs(Path(scratch), **OPTIONS)
        program = build_bundle(Path(scratch) / "bundle")
        output = Path(scratch) / "out"
        command = [sys.executable, str(program), "--config", str(config), "--data", str(data), "--output",
                   str(output)]
        os.environ["OMP_NUM_THREADS"] = "1"
        with open(Path(scratch) / "log", "w") as log:
            status = launch_processes(command, processes, output=log)
        if status != 0:
            raise RuntimeError(f"{processes} process(es) exited with {status}")
        events = [json.loads(line) for line in (output / "progress.jsonl").read_text().splitlines()]
    return [event for event in events if event["type"] == "done"][-1]["tokens_per_second"]


def main() -> None:
    """Measure, print the table and keep the numbers in benchmarks/results/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds taking turns; the best of each is kept")
    args = parser.parse_args()
    runs: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(args.rounds):
        for processes in runs:
            runs[processes].append(run(processes))
    best = {processes: max(values) for processes, values in runs.items()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"hyperparameters": {**HYPERPARAMETERS, **OPTIONS}, "runs": runs,
                                   "median": {k: statistics.median(v) for k, v in runs.items()}}, indent=2) + "\n")
    print(f"Data parallel: tiny-random-llama, LoRA, global batch 16, CPU (gloo), one thread per process, "
          f"best of {args.rounds} rounds\n")
    print(f"{'processes':<10}  {'tok/s':>8}  ratio")
    for processes, value in best.items():
        print(f"{processes:<10}  {value:>8,.0f}  {value / best[1]:.2f}x")


if __name__ == "__main__":
    main()
