"""The training loop: which examples form each step, the optimizer steps, evaluation, checkpoints and resuming."""
from __future__ import annotations

import json
import math
import os
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import transformers

from trainer import distributed
from trainer.checkpoints import save_extras
from trainer.config import Config, Hyperparameters
from trainer.data import Example, collate, count_targets, shuffled
from trainer.errors import ConfigError, Interrupted, TrainingError
from trainer.evaluation import validation_metrics
from trainer.models import Hardware, torch_dtype
from trainer.protocol import Reporter

GROUP_WINDOW = 64  # batches sorted together when grouping by length: wide enough to pad little, narrow to stay random
CHECKPOINTS_KEPT = 2


class Plan:
    """Which examples form each optimizer step, the same in every run of a config (so a resumed run continues)."""

    def __init__(self, lengths: list[int], hp: Hyperparameters):
        """The plan for examples of these lengths."""
        self.lengths, self.batch_size, self.accumulation = lengths, hp.batch_size, hp.gradient_accumulation_steps
        self.seed, self.grouped = hp.seed, hp.group_by_length
        self.batches_per_epoch = -(-len(lengths) // self.batch_size)
        self.steps_per_epoch = -(-self.batches_per_epoch // self.accumulation)  # the last may accumulate fewer
        self.total_steps = hp.max_steps or hp.epochs * self.steps_per_epoch
        self.epoch, self.batches = None, []

    def epoch_at(self, step: int) -> float:
        """How many epochs step optimizer steps amount to."""
        return round(step / self.steps_per_epoch, 4)

    def micro_batches(self, step: int) -> list[list[int]]:
        """The example indices of each micro-batch of optimizer step `step` (0-based)."""
        epoch, index = divmod(step, self.steps_per_epoch)
        if epoch != self.epoch:
            self.epoch, self.batches = epoch, epoch_batches(self.lengths, self.batch_size, self.seed + epoch,
                                                            self.grouped)
        return self.batches[index * self.accumulation:(index + 1) * self.accumulation]


def epoch_batches(lengths: list[int], batch_size: int, seed: int, grouped: bool) -> list[list[int]]:
    """One epoch's micro-batches of example indices, from a seeded shuffle.

    Grouped, each window of GROUP_WINDOW batches is sorted by length before it is cut, so a batch holds examples
    of similar length and carries little padding. The longest batch goes first: if it does not fit in memory,
    the run fails in its first step rather than hours later.
    """
    order = shuffled(range(len(lengths)), seed)
    if grouped:
        window = batch_size * GROUP_WINDOW
        order = [i for start in range(0, len(order), window)
                 for i in sorted(order[start:start + window], key=lambda i: lengths[i])]
    batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    if grouped:
        batches = shuffled(batches, seed)
    longest = max(range(len(batches)), key=lambda b: max(lengths[i] for i in batches[b]))
    batches[0], batches[longest] = batches[longest], batches[0]
    return batches


@dataclass
class Meter:
    """Throughput since this process started training, and the loss since the last progress line."""

    tokens: int = 0
    seconds: float = 0.0
    steps: int = 0
    window_loss: object = 0.0
    window_targets: int = 0

    def tokens_per_second(self) -> float | None:
        """Real (non-padding) tokens trained per second of training time."""
        return round(self.tokens / self.seconds, 1) if self.seconds else None

    def eta_seconds(self, remaining_steps: int) -> float | None:
        """Seconds left at the average step time so far."""
        return round(remaining_steps * self.seconds / self.steps, 1) if self.steps else None

    def take_window_loss(self) -> float | None:
        """The mean loss per target token since the last call."""
        loss = float(self.window_loss) / self.window_targets if self.window_targets else None
        self.window_loss, self.window_targets = 0.0, 0
        return loss


def fingerprint(config: Config) -> str:
    """The config as a canonical string: a checkpoint resumes only the run it came from."""
    return json.dumps(asdict(config), sort_keys=True)


def checkpoint_dirs(root: Path) -> list[Path]:
    """The complete checkpoints under root, oldest first."""
    return sorted(p for p in root.glob("step-*") if (p / "state.pt").is_file())


class Run:
    """One training run: model, optimizer, schedule and data plan; it trains, evaluates, checkpoints and reports."""

    def __init__(self, config: Config, hardware: Hardware, model, tokenizer, data: tuple, output: Path,
                 reporter: Reporter):
        """Set up the optimizer, schedule, gradient scaler and data plan; data is (train, validation) examples."""
        hp = config.hyperparameters
        self.config, self.hp, self.hardware, self.model, self.tokenizer = config, hp, hardware, model, tokenizer
        self.train_set, self.validation, self.output, self.reporter = *data, output, reporter
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.trainable, lr=hp.learning_rate, weight_decay=hp.weight_decay,
                                           fused=True)
        self.plan = Plan([len(example) for example in self.train_set], hp)
        self.warmup_steps = math.ceil(hp.warmup_ratio * self.plan.total_steps)
        self.scheduler = transformers.get_scheduler(hp.lr_scheduler, self.optimizer, self.warmup_steps,
                                                    self.plan.total_steps)
        self.scaler = torch.amp.GradScaler(hardware.device.type, enabled=hardware.precision == "fp16")
        self.step, self.history, self.meter = 0, [], Meter()
        self.last_loss = self.last_eval_loss = None
        self.world = distributed.world()  # data parallel: this process's share of each step (trainer/distributed.py)
        self.last_eval_metrics: dict = {}  # the step and validation metrics of the last evaluation

    def autocast(self):
        """Mixed precision for fp16/bf16 runs; a no-op in fp32."""
        dtype = torch_dtype(self.hardware.precision)
        return torch.autocast(self.hardware.device.type, dtype=dtype, enabled=self.hardware.precision != "fp32")

    def batch(self, examples: list[Example]) -> dict:
        """Collated tensors on the device; multiples of 8 suit the GPU's tensor cores."""
        pad_to = 8 if self.hardware.device.type == "cuda" else 1
        tensors = collate(examples, self.tokenizer.pad_token_id, pad_to)
        return {key: value.to(self.hardware.device, non_blocking=True) for key, value in tensors.items()}

    def count_targets(self, batch: dict) -> int:
        """What the step's loss is averaged over: the tokens that carry loss."""
        return count_targets(batch)

    def loss(self, batch: dict, targets: int):
        """The summed token loss of batch divided by targets (the whole step's count, for exact accumulation)."""
        with self.autocast():
            return self.model(**batch, num_items_in_batch=targets, use_cache=False).loss

    def train_step(self) -> None:
        """One optimizer step over its micro-batches, the loss averaged over every target token of the step."""
        started = time.perf_counter()
        groups = [distributed.share([self.train_set[i] for i in indices], self.world)
                  for indices in self.plan.micro_batches(self.step)]
        batches = [self.batch(examples) for examples in groups if examples]
        local_tokens = sum(len(example) for examples in groups for example in examples)
        targets, tokens = (int(total) for total in distributed.summed(
            [sum(self.count_targets(batch) for batch in batches), local_tokens], self.world, self.hardware.device))
        for batch in batches:
            loss = self.loss(batch, targets)
            self.scaler.scale(loss).backward()
            self.meter.window_loss += loss.detach() * targets
        self.update_weights()
        if self.hardware.device.type == "cuda":
            torch.cuda.synchronize()  # so that the step's time is the GPU's, not the kernel launches'
        self.meter.window_targets += targets
        self.meter.tokens += tokens
        self.meter.seconds += time.perf_counter() - started
        self.meter.steps += 1

    def update_weights(self) -> None:
        """Add up the ranks' gradients, clip them, step the optimizer and the schedule, clear the gradients."""
        distributed.sum_gradients(self.trainable, self.world)
        if self.hp.max_grad_norm:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.trainable, self.hp.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def evaluate(self) -> float:
        """The mean loss per target token over the validation examples."""
        return validation_metrics(self)["eval_loss"]

    def position(self) -> dict:
        """The protocol's common fields for the current step."""
        return {"step": self.step, "total_steps": self.plan.total_steps, "epoch": self.plan.epoch_at(self.step)}

    def report_progress(self) -> None:
        """A progress line: the loss since the last one, learning rate, throughput and time left."""
        [self.meter.window_loss] = distributed.summed([self.meter.window_loss], self.world, self.hardware.device)
        self.last_loss = self.meter.take_window_loss()
        event = self.reporter.emit(
            "progress", **self.position(), loss=self.last_loss, learning_rate=self.scheduler.get_last_lr()[0],
            tokens_per_second=self.meter.tokens_per_second(),
            eta_seconds=self.meter.eta_seconds(self.plan.total_steps - self.step), **self.step_metrics())
        self.history.append(event)

    def step_metrics(self) -> dict:
        """Metrics a kind of run adds to its progress lines (a preference run's rewards); none here."""
        return {}

    def report_eval(self) -> None:
        """Evaluate and report the validation metrics."""
        metrics = self.eval_metrics()
        self.last_eval_loss, self.last_eval_metrics = metrics["eval_loss"], {"step": self.step, **metrics}
        self.history.append(self.reporter.emit("eval", **self.position(), **metrics))

    def eval_metrics(self) -> dict:
        """The validation metrics of an evaluation: loss, mean token accuracy and perplexity."""
        return validation_metrics(self)

    def save_checkpoint(self) -> None:
        """Rank 0 writes the checkpoint (once, whatever the number of processes); the others wait for it."""
        if self.world.main:
            self.write_checkpoint()
        distributed.barrier(self.world)

    def write_checkpoint(self) -> None:
        """Write a checkpoint atomically (a folder renamed into place), then drop all but the newest ones."""
        root = self.output / "checkpoints"
        final, temporary = root / f"step-{self.step:08d}", root / f".partial-step-{self.step:08d}"
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir(parents=True)
        torch.save(self.state(), temporary / "state.pt")
        metrics = save_extras(self, temporary)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(temporary, final)
        for old in checkpoint_dirs(root)[:-CHECKPOINTS_KEPT]:
            shutil.rmtree(old)
        self.reporter.emit("checkpoint", **self.position(), path=str(final.relative_to(self.output)), metrics=metrics)

    def state(self) -> dict:
        """Everything a resumed run needs to continue exactly: weights being trained, optimizer, RNG, history."""
        cuda = self.hardware.device.type == "cuda"
        return {
            "step": self.step, "fingerprint": fingerprint(self.config), "history": self.history,
            "trainable": {name: p.detach().cpu() for name, p in self.model.named_parameters() if p.requires_grad},
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if cuda else [],
        }

    def resume(self) -> int | None:
        """Continue from the newest checkpoint in the output folder, if any; returns its step."""
        found = checkpoint_dirs(self.output / "checkpoints")
        if not found:
            return None
        state = torch.load(found[-1] / "state.pt", map_location="cpu", weights_only=True)
        if state["fingerprint"] != fingerprint(self.config):
            raise ConfigError("The output folder holds checkpoints of a different configuration; "
                              "use an empty output folder or the original config.")
        unexpected = self.model.load_state_dict(state["trainable"], strict=False).unexpected_keys
        if unexpected:
            raise TrainingError(f"The checkpoint does not fit this model (e.g. {unexpected[0]}).")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.step, self.history = state["step"], state["history"]
        return self.step

    def fit(self, stop: threading.Event) -> None:
        """Train to the last step, reporting, evaluating and checkpointing at the configured intervals.

        Once stop is set (SIGTERM), the run checkpoints after the current step and raises Interrupted, so that
        whoever stopped it (a worker shutting down, a cancel) can resume it later from that step.
        """
        hp, total = self.hp, self.plan.total_steps
        self.model.train()
        while self.step < total:
            self.train_step()
            self.step += 1
            if self.step % hp.logging_steps == 0 or self.step == total:
                self.report_progress()
            if self.validation and (self.step % hp.eval_steps == 0 or self.step == total):
                self.report_eval()
            if self.step % hp.save_steps == 0 and self.step < total:
                self.save_checkpoint()
            if self.step < total and distributed.anyone_stopped(stop, self.world, self.hardware.device):
                self.save_checkpoint()
                raise Interrupted(self.step)
