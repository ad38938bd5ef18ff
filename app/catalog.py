"""The base-model catalog and the GPU memory estimate that says whether a job fits (docs/TRAINING.md explains it)."""
from __future__ import annotations

from dataclasses import dataclass

from trainer.config import ADAPTERS, METHODS, PREFERENCE_METHODS

GB = 1e9
PROJECTIONS = ("q", "k", "v", "o", "gate", "up", "down")  # what LoRA adapts by default (trainer/models.py)
NF4_BYTES = 4.127 / 8  # bitsandbytes NF4 with double quantization: 4 bits plus ~0.127 bits of block scales
LOGIT_BYTES = 12  # per vocabulary entry and token at the loss: 16-bit logits, fp32 copy, log-softmax, its gradient
CUDA_CONTEXT_GB = 0.4  # the CUDA context and cuBLAS workspaces, outside PyTorch's allocator
FRAGMENTATION = 0.08  # the caching allocator reserves this much more than it hands out, typically
T4_GB = 16


class UnknownModel(KeyError):
    """No catalog entry has that id."""


@dataclass(frozen=True)
class Architecture:
    """The shapes that decide training memory, from the model's config.json."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied_embeddings: bool = True
    norms_per_layer: int = 2
    fused_projections: bool = False  # Phi-3 computes q, k, v in one matrix, and gate and up in another
    softcapping: bool = False  # Gemma 2 soft-caps attention scores (so attention runs eagerly) and logits

    def projections(self) -> list[tuple[tuple[str, ...], int, int]]:
        """The linear modules of one layer: the projections each computes, in and out features."""
        q, kv, h, i = self.heads * self.head_dim, self.kv_heads * self.head_dim, self.hidden, self.intermediate
        if self.fused_projections:
            return [(("q", "k", "v"), h, q + 2 * kv), (("o",), q, h), (("gate", "up"), h, 2 * i), (("down",), i, h)]
        return [(("q",), h, q), (("k",), h, kv), (("v",), h, kv), (("o",), q, h), (("gate",), h, i), (("up",), h, i),
                (("down",), i, h)]

    def adapted(self, targets: tuple[str, ...]) -> list[tuple[int, int]]:
        """(in, out) features of the modules LoRA adapts when it targets those projections."""
        return [(inputs, outputs) for parts, inputs, outputs in self.projections() if set(parts) & set(targets)]

    def linear_parameters(self) -> int:
        """Weights of the layers' projections: what 4-bit quantization shrinks."""
        return self.layers * sum(inputs * outputs for _, inputs, outputs in self.projections())

    def embedding_parameters(self) -> int:
        """The token embedding, and the output head when it is a separate matrix."""
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2)


@dataclass(frozen=True)
class ModelEntry:
    """One base model the Studio offers."""

    id: str
    hub_id: str
    display_name: str
    parameters: int
    context_length: int
    license: str
    gated: bool
    source: str
    architecture: Architecture
    demo: bool = False

    @property
    def url(self) -> str | None:
        """The model card, for models from the Hugging Face hub."""
        return f"https://huggingface.co/{self.hub_id}" if self.source == "huggingface" else None


def _hub(id_: str, hub_id: str, name: str, parameters: int, context: int, license_: str, gated: bool,
         shape: Architecture) -> ModelEntry:
    """A catalog entry for a model on the Hugging Face hub."""
    return ModelEntry(id_, hub_id, name, parameters, context, license_, gated, "huggingface", shape)


# Shapes from each model's config.json; parameter counts as their model cards state them.
CATALOG: tuple[ModelEntry, ...] = (
    _hub("smollm2-360m-instruct", "HuggingFaceTB/SmolLM2-360M-Instruct", "SmolLM2 360M Instruct", 361_821_120,
         8192, "apache-2.0", False, Architecture(32, 960, 2560, 15, 5, 64, 49152)),
    _hub("qwen2.5-0.5b-instruct", "Qwen/Qwen2.5-0.5B-Instruct", "Qwen2.5 0.5B Instruct", 494_032_768,
         32768, "apache-2.0", False, Architecture(24, 896, 4864, 14, 2, 64, 151936)),
    _hub("llama-3.2-1b-instruct", "meta-llama/Llama-3.2-1B-Instruct", "Llama 3.2 1B Instruct", 1_235_814_400,
         131072, "llama3.2", True, Architecture(16, 2048, 8192, 32, 8, 64, 128256)),
    _hub("qwen2.5-1.5b-instruct", "Qwen/Qwen2.5-1.5B-Instruct", "Qwen2.5 1.5B Instruct", 1_543_714_304,
         32768, "apache-2.0", False, Architecture(28, 1536, 8960, 12, 2, 128, 151936)),
    _hub("smollm2-1.7b-instruct", "HuggingFaceTB/SmolLM2-1.7B-Instruct", "SmolLM2 1.7B Instruct", 1_711_376_384,
         8192, "apache-2.0", False, Architecture(24, 2048, 8192, 32, 32, 64, 49152)),
    _hub("gemma-2-2b-it", "google/gemma-2-2b-it", "Gemma 2 2B it", 2_614_341_888,
         8192, "gemma", True, Architecture(26, 2304, 9216, 8, 4, 256, 256000, norms_per_layer=4, softcapping=True)),
    _hub("qwen2.5-3b-instruct", "Qwen/Qwen2.5-3B-Instruct", "Qwen2.5 3B Instruct", 3_085_938_688,
         32768, "qwen-research", False, Architecture(36, 2048, 11008, 16, 2, 128, 151936)),
    _hub("llama-3.2-3b-instruct", "meta-llama/Llama-3.2-3B-Instruct", "Llama 3.2 3B Instruct", 3_212_749_824,
         131072, "llama3.2", True, Architecture(28, 3072, 8192, 24, 8, 128, 128256)),
    _hub("phi-3.5-mini-instruct", "microsoft/Phi-3.5-mini-instruct", "Phi-3.5 mini instruct", 3_821_079_552,
         131072, "mit", False,
         Architecture(32, 3072, 8192, 32, 32, 96, 32064, tied_embeddings=False, fused_projections=True)),
    ModelEntry("tiny-random-llama", "tiny-random-llama", "Tiny random Llama (test and demo model)", 107_584,
               4096, "apache-2.0", False, "builtin", Architecture(2, 64, 128, 4, 2, 16, 262, tied_embeddings=False),
               demo=True),
)
BY_ID = {entry.id: entry for entry in CATALOG}


def get_entry(model_id: str) -> ModelEntry:
    """The catalog entry of model_id (the catalog id or the hub id); UnknownModel otherwise."""
    entry = find(model_id)
    if entry is None:
        raise UnknownModel(model_id)
    return entry


def find(model_id: str) -> ModelEntry | None:
    """The catalog entry of model_id (the catalog id or the hub id, surrounding blanks ignored), or None."""
    model_id = (model_id or "").strip()
    return next((entry for entry in CATALOG if model_id in (entry.id, entry.hub_id)), None)


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak GPU memory of a training run, in GB (10^9 bytes), by what holds it."""

    model_id: str
    method: str
    max_seq_length: int
    batch_size: int
    gradient_checkpointing: bool
    trainable_parameters: int
    weights_gb: float
    trainable_gb: float
    activations_gb: float
    overhead_gb: float

    @property
    def peak_allocated_gb(self) -> float:
        """What PyTorch's allocator peaks at (torch.cuda.max_memory_allocated), which published figures report."""
        return self.weights_gb + self.trainable_gb + self.activations_gb

    @property
    def total_gb(self) -> float:
        """Everything the GPU must hold, CUDA context and allocator slack included."""
        return self.peak_allocated_gb + self.overhead_gb

    def breakdown(self) -> dict:
        """What holds the memory and the totals, in GB rounded to 0.01, with the count of trained parameters."""
        parts = ("weights_gb", "trainable_gb", "activations_gb", "overhead_gb", "peak_allocated_gb", "total_gb")
        return {"trainable_parameters": self.trainable_parameters,
                **{part: round(getattr(self, part), 2) for part in parts}}


def lora_parameters(shape: Architecture, rank: int, targets: tuple[str, ...]) -> int:
    """Parameters of LoRA adapters of the given rank on the target projections of every layer."""
    return shape.layers * sum(rank * (inputs + outputs) for inputs, outputs in shape.adapted(targets))


def weight_bytes(entry: ModelEntry, method: str) -> float:
    """The frozen or trained base weights.

    LoRA keeps them in 16 bits. QLoRA stores the projections in NF4, and peft's preparation casts every other
    weight (embeddings, norms) to fp32. Full fine-tuning keeps fp32 master weights plus the 16-bit copies that
    autocast makes of them.
    """
    if method == "lora":
        return 2 * entry.parameters
    if method == "qlora":
        linear = entry.architecture.linear_parameters()
        return NF4_BYTES * linear + 4 * (entry.parameters - linear)
    return (4 + 2) * entry.parameters


def layer_activation_bytes(shape: Architecture, seq_length: int, targets: tuple[str, ...],
                           lora_dropout: float) -> float:
    """Bytes one layer keeps per token for the backward pass, in 16-bit activations with memory-efficient SDPA.

    Each norm keeps an fp32 copy of its input and its 16-bit output; attention keeps q, k and v (k and v
    repeated to every head), its output and the o_proj input; the MLP keeps gate, up, the activation and
    their product. Each LoRA projection adds a 16-bit copy of its input, and a dropout mask when dropout is on.
    Eager attention (Gemma 2) also keeps its score matrix: capped, softmaxed in fp32, and cast back.
    """
    q_dim = shape.heads * shape.head_dim
    base = shape.norms_per_layer * 6 * shape.hidden + 10 * q_dim + 8 * shape.intermediate
    if shape.softcapping:
        base += 8 * shape.heads * seq_length
    per_input = 2 + (1 if lora_dropout else 0)
    return base + sum(per_input * inputs for inputs, _ in shape.adapted(targets))


def activation_bytes(entry: ModelEntry, method: str, tokens: int, batch_size: int, checkpointing: bool,
                     targets: tuple[str, ...], lora_dropout: float) -> float:
    """Activations at the peak: every layer's (or, checkpointed, only each layer's input plus one layer's) and
    the logits at the loss."""
    shape = entry.architecture
    per_layer = layer_activation_bytes(shape, tokens // batch_size, targets, lora_dropout)
    residual = 4 if method != "lora" else 2  # full and QLoRA carry an fp32 residual stream (fp32 embeddings)
    layers = shape.layers * residual * shape.hidden + per_layer if checkpointing else shape.layers * per_layer
    head_copy = 2 * shape.vocab * shape.hidden if method == "qlora" else 0  # autocast's 16-bit copy of the fp32 head
    logits = (LOGIT_BYTES + (4 if shape.softcapping else 0)) * shape.vocab  # capping keeps another copy
    return tokens * (layers + logits) + head_copy


def estimate_memory(model_id_or_entry: str | ModelEntry, method: str, max_seq_length: int, batch_size: int,
                    gradient_checkpointing: bool = True, *, lora_r: int = 16,
                    lora_targets: tuple[str, ...] = PROJECTIONS, lora_dropout: float = 0.05,
                    preference: str | None = None, reference_free: bool = False) -> MemoryEstimate:
    """Peak GPU memory of training with AdamW on batches of batch_size sequences (pairs, for a preference method:
    dpo or orpo) of max_seq_length tokens."""
    entry = model_id_or_entry if isinstance(model_id_or_entry, ModelEntry) else get_entry(model_id_or_entry)
    if method not in ADAPTERS:
        raise ValueError(f"method must be one of {', '.join(ADAPTERS)}")
    targets = () if method == "full" else lora_targets
    trainable = entry.parameters if method == "full" else lora_parameters(entry.architecture, lora_r, targets)
    # AdamW keeps two fp32 moments; gradients are fp32; LoRA weights are fp32 too (full's are in weight_bytes).
    trainable_bytes = trainable * (4 + 8 + (0 if method == "full" else 4))
    sequences = batch_size * (2 if preference else 1)  # a pair trains as two sequences
    activations = activation_bytes(entry, method, max_seq_length * sequences, sequences, gradient_checkpointing,
                                   targets, lora_dropout)
    weights = weight_bytes(entry, method)
    # DPO's reference pass runs before the policy's, without gradients: it is over before the policy's activations
    # are kept, so it adds a forward pass of time and nothing at the peak, except that full fine-tuning has no
    # adapter to switch off and keeps a frozen fp32 copy of the weights.
    if preference == "dpo" and not reference_free and method == "full":
        weights += 4 * entry.parameters
    peak = (weights + trainable_bytes + activations) / GB
    return MemoryEstimate(entry.id, preference or method, max_seq_length, batch_size, gradient_checkpointing,
                          trainable, weights_gb=weights / GB, trainable_gb=trainable_bytes / GB,
                          activations_gb=activations / GB, overhead_gb=CUDA_CONTEXT_GB + FRAGMENTATION * peak)


def estimate_for_method(entry: ModelEntry, method: str, max_seq_length: int, batch_size: int,
                        gradient_checkpointing: bool = True, *, adapter: str = "lora", reference_free: bool = False,
                        lora_r: int = 16) -> MemoryEstimate:
    """The estimate of a job's method: an adapter kind, or a preference method training the given adapter."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}")
    if method in PREFERENCE_METHODS:
        return estimate_memory(entry, adapter, max_seq_length, batch_size, gradient_checkpointing, lora_r=lora_r,
                               preference=method, reference_free=reference_free)
    return estimate_memory(entry, method, max_seq_length, batch_size, gradient_checkpointing, lora_r=lora_r)


def fits(estimate: MemoryEstimate, gpu_gb: float = T4_GB) -> bool:
    """Whether the run fits a GPU of gpu_gb GB (Kaggle's T4 and P100 have 16)."""
    return estimate.total_gb <= gpu_gb
