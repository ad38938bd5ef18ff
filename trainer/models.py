"""Models: the built-in tiny model and its tokenizer, the hardware, loading a base model, LoRA and QLoRA."""
from __future__ import annotations

from dataclasses import dataclass

import peft
import tokenizers
import torch
import transformers

from trainer.config import TINY_MODEL_ID, Config, Hyperparameters, choose_precision
from trainer.errors import ConfigError

TINY_MODEL_SEED = 1234
# A plain chat template for the built-in model and for base models that ship none; eos ends each turn so that
# generation stops after the assistant's answer.
DEFAULT_CHAT_TEMPLATE = (
    "{% if bos_token %}{{ bos_token }}{% endif %}"
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
TINY_SPECIAL_TOKENS = ("<|pad|>", "<|bos|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>")

LLAMA_STYLE_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
LORA_TARGETS = {
    "llama": LLAMA_STYLE_TARGETS,
    "qwen2": LLAMA_STYLE_TARGETS,
    "mistral": LLAMA_STYLE_TARGETS,
    "gemma": LLAMA_STYLE_TARGETS,
    "gemma2": LLAMA_STYLE_TARGETS,
    "phi3": ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
}
# The adapter a run trains (peft's default name), and DPO's frozen copy of the adapter the run continues: the
# reference model is then the earlier model itself, base + that adapter, without a second copy of the base.
TRAINED_ADAPTER = "default"
REFERENCE_ADAPTER = "reference"


def build_tiny_tokenizer():
    """The built-in model's tokenizer: one token per byte plus the chat markers, built offline and deterministic."""
    alphabet = sorted(tokenizers.pre_tokenizers.ByteLevel.alphabet())
    backend = tokenizers.Tokenizer(tokenizers.models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    backend.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = tokenizers.decoders.ByteLevel()
    backend.add_special_tokens(list(TINY_SPECIAL_TOKENS))
    pad, bos, end = TINY_SPECIAL_TOKENS[:3]
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, pad_token=pad, bos_token=bos,
                                                     eos_token=end)
    tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    return tokenizer


def build_tiny_model(tokenizer=None):
    """The built-in tiny Llama, initialised from a fixed seed: the same weights in every process."""
    tokenizer = tokenizer or build_tiny_tokenizer()
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=False,
        initializer_range=0.1,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    with torch.random.fork_rng(devices=[]):  # a fixed seed here must not disturb the run's own random state
        torch.manual_seed(TINY_MODEL_SEED)
        return transformers.LlamaForCausalLM(config)


def load_tokenizer(base_model: str):
    """The base model's tokenizer, given a pad token and a chat template when it has none."""
    if base_model == TINY_MODEL_ID:
        return build_tiny_tokenizer()
    tokenizer = transformers.AutoTokenizer.from_pretrained(base_model)
    if not tokenizer.is_fast:
        raise ConfigError(f"{base_model} has no fast tokenizer, which loss masking needs (token offsets).")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    return tokenizer


def torch_dtype(precision: str):
    """The torch dtype of a precision name."""
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


@dataclass(frozen=True)
class Hardware:
    """Where the run computes and in which precision."""

    device: object
    precision: str
    name: str


def detect_hardware(config: Config) -> Hardware:
    """The first CUDA GPU when there is one, else the CPU; QLoRA refuses to start without CUDA."""
    cuda = torch.cuda.is_available()
    if config.adapter == "qlora" and not cuda:
        raise ConfigError("QLoRA needs a CUDA GPU: it quantizes the model to 4 bits with bitsandbytes, which has "
                          "no CPU path here. Use method lora on this machine, or run the job on Kaggle's GPUs.")
    capability = torch.cuda.get_device_capability(0) if cuda else None
    name = torch.cuda.get_device_name(0) if cuda else "cpu"
    return Hardware(torch.device("cuda:0" if cuda else "cpu"), choose_precision(capability, config.precision), name)


def load_options(config: Config, hardware: Hardware, dtype) -> dict:
    """from_pretrained arguments: the weights' dtype, the GPU, and 4-bit NF4 quantization for QLoRA."""
    options = {"dtype": dtype}
    if hardware.device.type == "cuda":
        options["device_map"] = {"": hardware.device.index or 0}  # a data-parallel process's own GPU
    if config.adapter == "qlora":
        if not transformers.utils.is_bitsandbytes_available():
            raise ConfigError("QLoRA needs the bitsandbytes package: pip install bitsandbytes.")
        options["quantization_config"] = transformers.BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch_dtype(hardware.precision))
    return options


def load_model(config: Config, hardware: Hardware, tokenizer):
    """The base model on the device: frozen 16-bit weights for LoRA, 4-bit for QLoRA, fp32 master weights for full."""
    dtype = torch.float32 if config.adapter == "full" else torch_dtype(hardware.precision)
    if config.base_model == TINY_MODEL_ID:
        if hardware.device.type == "cpu":
            # Its operations take microseconds: split over threads they only wait on each other, and on a busy
            # machine every wait costs a scheduler time slice (runs measured ~50x slower under load).
            torch.set_num_threads(1)
        model = build_tiny_model(tokenizer).to(device=hardware.device, dtype=dtype)
    else:
        model = transformers.AutoModelForCausalLM.from_pretrained(config.base_model,
                                                                  **load_options(config, hardware, dtype))
    model.config.use_cache = False  # a KV cache is useless in training and would hide packed sequences from the mask
    return model


def lora_targets(hp: Hyperparameters, model_type: str):
    """The modules LoRA adapts: the config's list, else every attention and MLP projection of the architecture."""
    if hp.target_modules:
        return list(hp.target_modules)
    return list(LORA_TARGETS[model_type]) if model_type in LORA_TARGETS else "all-linear"


def prepare_for_training(model, config: Config, adapter_from=None):
    """Gradient checkpointing, the QLoRA preparation, and the LoRA adapter (new, or adapter_from's to continue)."""
    hp = config.hyperparameters
    checkpointing = {"use_reentrant": False}
    if config.adapter == "qlora":
        model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=hp.gradient_checkpointing,
                                                     gradient_checkpointing_kwargs=checkpointing)
    elif hp.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpointing)
    if config.adapter == "full":
        return model
    if adapter_from is not None:
        return continued_adapter(model, config, adapter_from)
    adapter = peft.LoraConfig(r=hp.lora_r, lora_alpha=hp.lora_alpha, lora_dropout=hp.lora_dropout,
                              target_modules=lora_targets(hp, model.config.model_type), task_type="CAUSAL_LM")
    try:
        return peft.get_peft_model(model, adapter)
    except ValueError as error:  # peft's message names the modules it could not find
        raise ConfigError(f"Cannot apply LoRA: {error}") from error


def continued_adapter(model, config: Config, adapter_from):
    """The earlier adapter, trainable; for DPO loaded once more, frozen, as the reference model's adapter."""
    model = peft.PeftModel.from_pretrained(model, adapter_from, is_trainable=True)
    if config.method == "dpo" and not config.hyperparameters.reference_free:
        model.load_adapter(adapter_from, adapter_name=REFERENCE_ADAPTER, is_trainable=False)
    return model


def save_adapter(model, folder) -> None:
    """The trained adapter's files (never the reference's) as safetensors."""
    model.save_pretrained(folder, safe_serialization=True, selected_adapters=[TRAINED_ADAPTER])
