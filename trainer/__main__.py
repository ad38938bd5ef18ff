"""The program's command line: `python -m trainer` or `python trainer.pyz --config … --data … --output …`.

The config is checked before the training stack (seconds to import) is loaded, so a bad one fails at once.
SIGTERM (or the end of --time-budget) asks for a checkpoint after the current step and exit status 75; every
failure ends with an error event and exit status 1 (2 for a bad command line).
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import traceback
from pathlib import Path

from trainer import budget
from trainer.config import load_config
from trainer.errors import Interrupted, TrainingError
from trainer.protocol import EXIT_INTERRUPTED, Reporter, print_error

MIN_TRANSFORMERS = (4, 56)  # `dtype` in from_pretrained; packed sequences told apart by their positions


def check_transformers_version(version: str) -> None:
    """Refuse a transformers older than the program needs."""
    found = tuple(int(part) for part in version.split(".")[:2])
    if found < MIN_TRANSFORMERS:
        raise TrainingError(f"transformers {version} is too old: this program needs "
                            f"{'.'.join(map(str, MIN_TRANSFORMERS))} or newer (pip install -U transformers).")


def load_program():
    """trainer.program, with torch, transformers and peft that it imports; TrainingError when they are missing."""
    try:
        import transformers

        check_transformers_version(transformers.__version__)
        from trainer import program
    except ModuleNotFoundError as error:
        raise TrainingError(f"The training packages are not installed ({error.name} is missing): "
                            "pip install -r requirements-train.txt.") from error
    return program


def is_out_of_memory(error: BaseException) -> bool:
    """Whether error is the GPU (or the host, for CPU runs) running out of memory."""
    torch = sys.modules.get("torch")  # a CUDA error can only come from a torch already imported
    cuda_oom = torch is not None and isinstance(error, torch.cuda.OutOfMemoryError)
    return cuda_oom or any(phrase in str(error).lower() for phrase in ("out of memory", "can't allocate memory"))


def describe_failure(error: BaseException) -> str:
    """The human message of an error event."""
    if is_out_of_memory(error):
        return ("Out of memory. Lower batch_size (raise gradient_accumulation_steps to keep the effective batch), "
                "shorten max_seq_length, keep gradient_checkpointing on, or use QLoRA.")
    if isinstance(error, TrainingError):
        return str(error)
    return f"Training failed: {type(error).__name__}: {error}"


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors also end with an error event."""

    def error(self, message: str):
        """Report the usage mistake, then exit as argparse does (status 2)."""
        print_error(f"Bad command line: {message}.")
        super().error(message)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """--config, --data and --output, all required."""
    parser = ArgumentParser(description="Fine-tune a causal language model (see docs/TRAINING.md).")
    parser.add_argument("--config", type=Path, required=True, help="the config JSON file")
    parser.add_argument("--data", type=Path, required=True, help="the folder holding the dataset files")
    parser.add_argument("--output", type=Path, required=True, help="the folder for checkpoints and outputs")
    parser.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                        help="checkpoint and stop (exit status 75) once this much wall-clock time has passed")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the program; every failure ends with an error event and exit status 1."""
    args = parse_args(argv)
    reporter = Reporter(args.output / "progress.jsonl")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    budget.watch(args.time_budget, stop)
    try:
        args.output.mkdir(parents=True, exist_ok=True)
        config = load_config(args.config)
        load_program().train(config, args.data, args.output, reporter, stop)
    except Interrupted as stopped:
        print(f"Stopped on request after saving a checkpoint at step {stopped}.", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except Exception as error:  # the Studio must always get an error line, whatever broke
        if not isinstance(error, TrainingError):  # a bug or a library failure: keep the details for the log
            traceback.print_exc()
        reporter.emit("error", message=describe_failure(error), error_type=type(error).__name__)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
