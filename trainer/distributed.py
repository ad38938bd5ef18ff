"""Data parallel training over processes: one per GPU of a Kaggle session (two T4s), or gloo processes on a CPU.

Each process reads its place from RANK, WORLD_SIZE and LOCAL_RANK (torchrun's variables; the Kaggle bootstrap sets
them itself). Every optimizer step keeps the global batch of one process: each rank takes its share of every
micro-batch (examples rank, rank + size, …), the loss is divided by the step's target tokens over all ranks, and
the gradients are summed before the optimizer steps, so the update is the one process's, up to the order of float
additions. Only rank 0 reports and writes checkpoints and outputs; every rank resumes from the same checkpoint.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, replace

import torch
import torch.distributed as dist

from trainer.protocol import PROGRESS_KEYS, Reporter


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this process reports and writes files."""
        return self.rank == 0


def world() -> World:
    """The place the launcher gave this process (one process alone without the variables)."""
    return World(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                 int(os.environ.get("LOCAL_RANK", 0)))


def start(place: World) -> None:
    """Join the process group: NCCL between GPUs, gloo on a CPU; each process on its own GPU."""
    if place.size == 1 or dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(place.local_rank)
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def stop(place: World) -> None:
    """Leave the process group."""
    if place.size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def on_own_gpu(hardware, place: World):
    """hardware on this process's GPU (LOCAL_RANK), unchanged on a CPU."""
    if hardware.device.type != "cuda":
        return hardware
    return replace(hardware, device=torch.device(f"cuda:{place.local_rank}"))


def share(examples: list, place: World) -> list:
    """This rank's share of a micro-batch."""
    return examples[place.rank::place.size]


def summed(values: list, place: World, device) -> list[float]:
    """Each value (a number or a one-element tensor) summed over every rank, in one all-reduce."""
    if place.size == 1:
        return [float(value) for value in values]
    tensor = torch.tensor([float(value) for value in values], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def sum_gradients(parameters: list, place: World) -> None:
    """Add up every rank's gradients in place (one flat all-reduce: LoRA's are small)."""
    if place.size == 1:
        return
    for parameter in parameters:  # a rank whose share of the step was empty adds nothing
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
    grads = [p.grad for p in parameters]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def anyone_stopped(stop: threading.Event, place: World, device) -> bool:
    """Whether any rank was asked to stop: all stop at the same step, or the others would wait forever."""
    return summed([1.0 if stop.is_set() else 0.0], place, device)[0] > 0


def barrier(place: World) -> None:
    """Wait for every rank (rank 0 writing a checkpoint the others will read)."""
    if place.size > 1:
        dist.barrier()


class QuietReporter(Reporter):
    """The reporter of ranks other than 0: events are made but never printed or written."""

    def emit(self, event_type: str, **values) -> dict:
        """The event, unreported."""
        return {"type": event_type, **dict.fromkeys(PROGRESS_KEYS), **values}


def reporter_for(place: World, reporter: Reporter) -> Reporter:
    """reporter on rank 0, a quiet one elsewhere."""
    return reporter if place.main else QuietReporter()
