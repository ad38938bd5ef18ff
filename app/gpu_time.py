"""How long a job trains on Kaggle's T4s: its token count over a tokens/s table per model size and method.

The table's figures are derived, not measured on a T4 (no T4 was at hand): a step costs 6·N FLOPs per token for
LoRA and QLoRA with gradient checkpointing (forward 2N, the checkpointed forward again 2N, the input gradients 2N;
Kaplan et al. 2020, "Scaling Laws for Neural Language Models", §2.1, for the 2N/4N split) and 8·N for full
fine-tuning (the weight gradients too); a T4 peaks at 65 TFLOPS in fp16 (NVIDIA T4 datasheet); training
reaches about 30 % of it (typical model-FLOPs utilisation of small-batch fine-tuning), and 20 % with QLoRA,
whose 4-bit weights are dequantised on every matmul (Dettmers et al. 2023, "QLoRA", §5: slower than 16-bit LoRA).
docs/KAGGLE.md says how to replace a row with a measured figure.
"""
from __future__ import annotations

from dataclasses import dataclass

from app.catalog import ModelEntry

T4_FP16_FLOPS = 65e12
UTILISATION = {"lora": 0.30, "qlora": 0.20, "full": 0.30}
FLOPS_PER_PARAMETER_TOKEN = {"lora": 6, "qlora": 6, "full": 8}
# A second T4 of the session, data parallel: LoRA's gradients are small, so the all-reduce costs little.
TWO_GPU_SPEEDUP = {"lora": 1.85, "qlora": 1.85, "full": 1.6}
SIZES_B = (0.5, 1.0, 1.5, 3.0, 4.0, 8.0)  # the catalog's sizes (billions of parameters), 8B with QLoRA only


def derived_tokens_per_second(size_b: float, method: str) -> int:
    """The tokens/s of one T4 for a model of size_b billion parameters, by the derivation above."""
    flops_per_token = FLOPS_PER_PARAMETER_TOKEN[method] * size_b * 1e9
    return round(UTILISATION[method] * T4_FP16_FLOPS / flops_per_token)


# (size in billions, method) → tokens/s on one T4, and where the figure comes from.
T4_TOKENS_PER_SECOND: dict[tuple[float, str], tuple[int, str]] = {
    (size, method): (derived_tokens_per_second(size, method), "derived (module docstring)")
    for size in SIZES_B for method in ("lora", "qlora", "full") if method == "qlora" or size <= 4.0
}


@dataclass(frozen=True)
class GpuTimeEstimate:
    """A job's training time on Kaggle, and the figure it rests on."""

    tokens: int
    tokens_per_second: float
    gpus: int
    source: str

    @property
    def hours(self) -> float:
        """Hours of GPU session (what Kaggle's weekly quota counts), to the minute."""
        return round(self.tokens / self.tokens_per_second / 3600, 2)


def tokens_per_second(entry: ModelEntry, method: str, gpus: int = 1) -> tuple[float, str]:
    """The table's row of the smallest size at least the model's, scaled to its parameter count."""
    size_b = entry.parameters / 1e9
    rows = sorted((size, row) for (size, row_method), row in T4_TOKENS_PER_SECOND.items() if row_method == method)
    size, (per_second, source) = next(((s, r) for s, r in rows if s >= size_b), rows[-1])
    scaled = per_second * size / max(size_b, 1e-3)  # the cost per token grows with the parameters
    return scaled * (TWO_GPU_SPEEDUP[method] if gpus == 2 else 1.0), source


def trained_tokens(stats: dict | None, hyperparameters: dict, defaults) -> int:
    """The tokens a run trains on: each example up to max_seq_length, every epoch (or max_steps' worth)."""
    stats = stats or {}
    examples = max(1, int(stats.get("examples") or stats.get("example_count") or 1))
    total = int((stats.get("tokens") or {}).get("total") or 0)
    max_seq = hyperparameters.get("max_seq_length", defaults.max_seq_length)
    per_example = min(total / examples, max_seq) if total else max_seq
    if hyperparameters.get("max_steps"):
        batch = hyperparameters.get("batch_size", defaults.batch_size)
        accumulation = hyperparameters.get("gradient_accumulation_steps", defaults.gradient_accumulation_steps)
        return round(hyperparameters["max_steps"] * batch * accumulation * per_example)
    return round(examples * per_example * hyperparameters.get("epochs", defaults.epochs))


def estimate(entry: ModelEntry, method: str, tokens: int, gpus: int = 1) -> GpuTimeEstimate:
    """The GPU time of training tokens on gpus T4s."""
    per_second, source = tokens_per_second(entry, method, gpus)
    return GpuTimeEstimate(tokens, per_second, gpus, source)
