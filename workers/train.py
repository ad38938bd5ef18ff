"""The training program: LoRA, QLoRA or full fine-tuning of a causal LM, reporting progress as `@@studio` lines.

Run as `python train.py --config config.json --data DIR --output DIR` (a Kaggle script kernel or a local
subprocess). It is one self-contained file: the standard library, torch, transformers and peft, plus
bitsandbytes for QLoRA; it never imports the Studio. docs/TRAINING.md describes the config, the progress
protocol and the outputs.
"""
from __future__ import annotations

import argparse
import bisect
import json
import math
import os
import random
import shutil
import signal
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

# The training stack, imported by load_training_stack() once the config is known to be good: importing it takes
# seconds, and the Studio imports this module for its protocol helpers where the stack may not even be installed.
jinja2 = peft = tokenizers = torch = transformers = None

PROGRESS_PREFIX = "@@studio "
EVENT_TYPES = ("start", "progress", "eval", "checkpoint", "done", "error")
PROGRESS_KEYS = ("step", "total_steps", "epoch", "loss", "eval_loss", "learning_rate", "tokens_per_second",
                 "eta_seconds")

TINY_MODEL_ID = "tiny-random-llama"
TINY_MODEL_SEED = 1234
METHODS = ("lora", "qlora", "full")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
IGNORE_INDEX = -100
GROUP_WINDOW = 64  # batches sorted together when grouping by length: wide enough to pad little, narrow to stay random
CHECKPOINTS_KEPT = 2
MIN_TRANSFORMERS = (4, 56)  # `dtype` in from_pretrained; packed sequences told apart by their positions

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


# ---------------------------------------------------------------------------------------------------------------
# Progress protocol


def parse_progress_line(line: str) -> dict | None:
    """The event of a `@@studio {json}` line (the prefix may follow a log timestamp), or None for any other line."""
    start = line.find(PROGRESS_PREFIX)
    if start < 0:
        return None
    try:
        event = json.loads(line[start + len(PROGRESS_PREFIX):])
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("type") not in EVENT_TYPES:
        return None
    return event


def finite_or_none(value):
    """value, unless it is a float JSON cannot carry (NaN or infinity)."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


class Reporter:
    """Prints protocol lines on stdout, flushed, and appends them to progress.jsonl in the output folder."""

    def __init__(self, log_path: Path | None = None):
        """Report on stdout, and into log_path when given."""
        self.log_path = log_path

    def emit(self, event_type: str, **values) -> dict:
        """Report one event; every line carries all the protocol keys, null where unknown."""
        event = {"type": event_type, **dict.fromkeys(PROGRESS_KEYS), **values}
        event = {key: finite_or_none(value) for key, value in event.items()}
        text = json.dumps(event, allow_nan=False)
        print(PROGRESS_PREFIX + text, flush=True)
        if self.log_path is not None and self.log_path.parent.is_dir():
            with self.log_path.open("a") as log:
                log.write(text + "\n")
        return event


# ---------------------------------------------------------------------------------------------------------------
# Configuration


# Set by SIGTERM: the run checkpoints after the current step and exits with EXIT_INTERRUPTED, so whoever
# stopped it (a worker shutting down, a cancel) can resume it later from that step.
STOP_REQUESTED = threading.Event()
EXIT_INTERRUPTED = 75


class Interrupted(Exception):
    """The run was asked to stop and saved a checkpoint first."""


class TrainingError(Exception):
    """A failure the user can act on; its message is shown as is."""


class ConfigError(TrainingError):
    """The config file is malformed or asks for something impossible here."""


class DataError(TrainingError):
    """A dataset file is unreadable or has no usable example."""


@dataclass(frozen=True)
class Hyperparameters:
    """The training knobs, with the defaults a config may omit."""

    epochs: int = 3
    max_steps: int | None = None
    learning_rate: float = 2e-4
    batch_size: int = 4
    gradient_accumulation_steps: int = 4
    max_seq_length: int = 1024
    warmup_ratio: float = 0.03
    lr_scheduler: str = "cosine"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: list | None = None
    packing: bool = False
    train_on_prompt: bool = False
    gradient_checkpointing: bool = True
    group_by_length: bool = True
    eval_steps: int = 50
    save_steps: int = 100
    logging_steps: int = 10
    validation_split: float = 0.0
    seed: int = 42


@dataclass(frozen=True)
class Config:
    """A whole training run as the config file describes it."""

    base_model: str
    method: str = "lora"
    train_file: str = "train.jsonl"
    validation_file: str | None = None
    precision: str = "auto"
    merge_adapter: bool = False
    hyperparameters: Hyperparameters = field(default_factory=Hyperparameters)


# What each hyperparameter may hold beyond its type: a predicate and the phrase an error uses.
HYPERPARAMETER_RULES = {
    "learning_rate": (lambda v: 0 < v < 1, "a number between 0 and 1"),
    "warmup_ratio": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "validation_split": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "lora_dropout": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "weight_decay": (lambda v: v >= 0, "a number of at least 0"),
    "max_grad_norm": (lambda v: v >= 0, "a number of at least 0 (0 disables clipping)"),
    "lr_scheduler": (lambda v: v in SCHEDULERS, "one of " + ", ".join(SCHEDULERS)),
    "seed": (lambda v: v >= 0, "an integer of at least 0"),
    "max_seq_length": (lambda v: v >= 16, "an integer of at least 16"),
    "target_modules": (lambda v: all(isinstance(m, str) and m for m in v), "a list of module names"),
}


def check_type(name: str, value, annotation: str) -> None:
    """Raise ConfigError unless value fits the field's annotation (ints pass as floats; bools are not ints)."""
    kinds = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "list": (list,)}
    expected = kinds[annotation.split(" |")[0]]
    optional = "None" in annotation
    if value is None and optional:
        return
    if isinstance(value, bool) and bool not in expected or not isinstance(value, expected):
        raise ConfigError(f"hyperparameters.{name} must be {annotation.replace(' | None', '')}, not {value!r}.")


def parse_hyperparameters(raw: dict) -> Hyperparameters:
    """Hyperparameters from the config's mapping, every value checked; unknown names are errors (typos)."""
    if not isinstance(raw, dict):
        raise ConfigError("hyperparameters must be a JSON object.")
    known = {f.name: f.type for f in fields(Hyperparameters)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"Unknown hyperparameters: {', '.join(unknown)}.")
    for name, value in raw.items():
        check_type(name, value, known[name])
        rule, phrase = HYPERPARAMETER_RULES.get(name, (lambda v: v > 0, "a number greater than 0"))
        if value is not None and not isinstance(value, bool) and not rule(value):
            raise ConfigError(f"hyperparameters.{name} must be {phrase}, not {value!r}.")
    return Hyperparameters(**raw)


def parse_config(raw: dict) -> Config:
    """A Config from the parsed config file, or ConfigError naming the first problem."""
    if not isinstance(raw, dict):
        raise ConfigError("The config must be a JSON object.")
    unknown = sorted(set(raw) - {f.name for f in fields(Config)})
    if unknown:
        raise ConfigError(f"Unknown config keys: {', '.join(unknown)}.")
    if not isinstance(raw.get("base_model"), str) or not raw["base_model"].strip():
        raise ConfigError("base_model is required: a Hugging Face model id, a local folder or tiny-random-llama.")
    hyperparameters = parse_hyperparameters({} if raw.get("hyperparameters") is None else raw["hyperparameters"])
    config = Config(**{**raw, "hyperparameters": hyperparameters})
    if config.method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, not {config.method!r}.")
    if config.precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, not {config.precision!r}.")
    for name in ("train_file", "validation_file"):
        value = getattr(config, name)
        if value is not None and (not isinstance(value, str) or Path(value).name != value):
            raise ConfigError(f"{name} must be a file name inside the data folder, not {value!r}.")
    return config


def load_config(path: Path) -> Config:
    """The validated config read from a JSON file."""
    try:
        raw = json.loads(path.read_text())
    except OSError as error:
        raise ConfigError(f"Cannot read the config file {path}: {error.strerror}.") from error
    except ValueError as error:
        raise ConfigError(f"The config file {path} is not valid JSON: {error}.") from error
    return parse_config(raw)


def choose_precision(capability: tuple[int, int] | None, requested: str = "auto") -> str:
    """fp32 on a CPU (capability None); bf16 from compute capability 8.0 (Ampere), fp16 below (a T4 is 7.5)."""
    if capability is None:
        if requested in ("auto", "fp32"):
            return "fp32"
        raise ConfigError(f"precision {requested} needs a CUDA GPU; this machine has none (use auto or fp32).")
    best = "bf16" if tuple(capability) >= (8, 0) else "fp16"
    if requested == "bf16" and best != "bf16":
        raise ConfigError(f"This GPU (compute capability {capability[0]}.{capability[1]}) has no bf16; "
                          "use precision auto or fp16.")
    return best if requested == "auto" else requested


# ---------------------------------------------------------------------------------------------------------------
# Datasets: JSONL records → chat messages → token ids with loss labels


@dataclass
class Example:
    """One training sequence: token ids, labels (-100 where no loss is taken) and, when packed, positions."""

    input_ids: list
    labels: list
    position_ids: list | None = None

    def __len__(self) -> int:
        """The number of tokens."""
        return len(self.input_ids)


def read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """(line number, record) for each non-blank line of a JSONL file; DataError names a bad line."""
    if not path.is_file():
        raise DataError(f"Dataset file {path.name} is missing from the data folder.")
    records = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as error:
                raise DataError(f"{path.name} line {number}: not valid JSON ({error.msg}).") from error
            if not isinstance(record, dict):
                raise DataError(f"{path.name} line {number}: expected a JSON object.")
            records.append((number, record))
    return records


def detect_format(record: dict) -> str | None:
    """chat, instruction, prompt_completion or text, from a record's keys; None when none fits."""
    if isinstance(record.get("messages"), list):
        return "chat"
    if "instruction" in record and "output" in record:
        return "instruction"
    if "prompt" in record and "completion" in record:
        return "prompt_completion"
    if isinstance(record.get("text"), str):
        return "text"
    return None


def to_messages(record: dict, kind: str) -> list[dict]:
    """The record as chat messages (role, content, optional weight)."""
    if kind == "chat":
        return record["messages"]
    if kind == "instruction":
        extra = record.get("input") or ""
        prompt = f"{record['instruction']}\n\n{extra}" if extra else record["instruction"]
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": record["output"]}]
    return [{"role": "user", "content": record["prompt"]}, {"role": "assistant", "content": record["completion"]}]


def check_messages(messages: list, where: str) -> None:
    """Raise DataError unless every message has a string role and content."""
    if not messages:
        raise DataError(f"{where}: messages is empty.")
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) \
                or not isinstance(message.get("content"), str):
            raise DataError(f"{where}: each message needs a string role and content.")


def render_chat(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    """The conversation as the model's chat template writes it."""
    plain = [{"role": m["role"], "content": m["content"]} for m in messages]
    try:
        return tokenizer.apply_chat_template(plain, tokenize=False, add_generation_prompt=add_generation_prompt)
    except jinja2.TemplateError:
        if not plain or plain[0]["role"] != "system" or len(plain) < 2:
            raise
    # Some templates (Gemma's) refuse a system turn: fold it into the first user turn instead.
    merged = {"role": plain[1]["role"], "content": plain[0]["content"] + "\n\n" + plain[1]["content"]}
    return tokenizer.apply_chat_template([merged, *plain[2:]], tokenize=False,
                                         add_generation_prompt=add_generation_prompt)


def common_prefix_length(a: str, b: str) -> int:
    """How many leading characters a and b share."""
    return len(os.path.commonprefix([a, b]))


def trained_spans(tokenizer, messages: list[dict], text: str) -> list[tuple[int, int]]:
    """Character spans of text that carry loss: each assistant turn (weight 1) with its end-of-turn marker."""
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant" or not message.get("weight", 1):
            continue
        # Render the history with the assistant header, then with the turn itself: the difference is the answer.
        # Compare prefixes rather than lengths: some templates end a conversation differently (Phi adds eos), and
        # a shared start of two different tokens is no token of the answer (see tokenize_with_spans).
        before = render_chat(tokenizer, messages[:index], add_generation_prompt=True) if index else ""
        through = render_chat(tokenizer, messages[:index + 1])
        spans.append((common_prefix_length(text, before), common_prefix_length(text, through)))
    return spans


def tokenize_with_spans(tokenizer, text: str, spans: list[tuple[int, int]]) -> Example:
    """Tokenize text; a token is trained when it lies wholly inside one of the character spans."""
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    starts = [start for start, _ in spans]
    labels = []
    for token, (begin, end) in zip(encoded["input_ids"], encoded["offset_mapping"], strict=True):
        span = bisect.bisect_right(starts, begin) - 1
        labels.append(token if span >= 0 and end <= spans[span][1] else IGNORE_INDEX)
    return Example(input_ids=list(encoded["input_ids"]), labels=labels)


def tokenize_record(tokenizer, record: dict, kind: str, train_on_prompt: bool) -> Example:
    """One record as token ids and labels, before truncation."""
    if kind == "text":
        ids = tokenizer(record["text"])["input_ids"]
        if tokenizer.eos_token_id is not None and (not ids or ids[-1] != tokenizer.eos_token_id):
            ids = [*ids, tokenizer.eos_token_id]
        return Example(input_ids=ids, labels=list(ids))
    messages = to_messages(record, kind)
    text = render_chat(tokenizer, messages)
    spans = [(0, len(text))] if train_on_prompt else trained_spans(tokenizer, messages, text)
    return tokenize_with_spans(tokenizer, text, spans)


def truncate(example: Example, max_length: int) -> tuple[Example, bool]:
    """The example cut to max_length tokens, and whether it was cut."""
    if len(example) <= max_length:
        return example, False
    return Example(example.input_ids[:max_length], example.labels[:max_length]), True


def check_record(record: dict, kind: str, where: str) -> None:
    """Raise DataError unless the record has the fields of the file's format, as strings."""
    if detect_format(record) != kind:
        raise DataError(f"{where}: this file holds {kind} records, but this line does not.")
    if kind == "chat":
        check_messages(record["messages"], where)
        return
    keys = {"instruction": ("instruction", "output"), "prompt_completion": ("prompt", "completion"),
            "text": ("text",)}[kind]
    if not all(isinstance(record[key], str) for key in keys) or not isinstance(record.get("input", ""), str):
        raise DataError(f"{where}: {', '.join(keys)} must be strings.")


@dataclass
class DatasetStats:
    """What preparing a dataset file found."""

    format: str = ""
    records: int = 0
    truncated: int = 0
    dropped: int = 0


def prepare_file(path: Path, tokenizer, hp: Hyperparameters) -> tuple[list[Example], DatasetStats]:
    """Read, check and tokenize one JSONL file; examples left with no trained token are dropped and counted."""
    records = read_jsonl(path)
    if not records:
        raise DataError(f"Dataset file {path.name} has no records.")
    kind = detect_format(records[0][1])
    if kind is None:
        raise DataError(f"{path.name} line {records[0][0]}: unknown record format (keys: "
                        f"{', '.join(sorted(records[0][1]))}); expected messages, instruction/output, "
                        "prompt/completion or text.")
    stats, examples = DatasetStats(format=kind, records=len(records)), []
    for number, record in records:
        check_record(record, kind, f"{path.name} line {number}")
        example, was_cut = truncate(tokenize_record(tokenizer, record, kind, hp.train_on_prompt), hp.max_seq_length)
        stats.truncated += was_cut
        if all(label == IGNORE_INDEX for label in example.labels[1:]):
            stats.dropped += 1
            continue
        examples.append(example)
    return examples, stats


def split_validation(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(train, validation): a seeded random fraction held out, at least one example when fraction > 0."""
    if fraction <= 0 or len(examples) < 2:
        return examples, []
    held = max(1, round(len(examples) * fraction))
    chosen = set(shuffled(range(len(examples)), seed)[:held])
    return ([e for i, e in enumerate(examples) if i not in chosen], [e for i, e in enumerate(examples) if i in chosen])


def pack_examples(examples: list[Example], capacity: int) -> list[Example]:
    """Whole examples packed best-fit-decreasing into sequences of at most capacity tokens.

    Positions restart at 0 for each example, which tells the attention not to look across examples, and the
    first label of each example is dropped: it would be predicted from the previous example's last token.
    """
    bins: list[list[Example]] = []
    free: list[tuple[int, int]] = []  # (room left, bin index), sorted, for a best-fit search
    for example in sorted(examples, key=len, reverse=True):
        slot = bisect.bisect_left(free, (len(example), -1))
        if slot == len(free):
            bins.append([])
            room, index = capacity, len(bins) - 1
        else:
            room, index = free.pop(slot)
        bins[index].append(example)
        if room - len(example) > 0:
            bisect.insort(free, (room - len(example), index))
    return [join_examples(members) for members in bins]


def join_examples(members: list[Example]) -> Example:
    """Several examples as one packed sequence."""
    packed = Example(input_ids=[], labels=[], position_ids=[])
    for example in members:
        packed.input_ids += example.input_ids
        packed.labels += [IGNORE_INDEX, *example.labels[1:]]
        packed.position_ids += list(range(len(example)))
    return packed


def load_datasets(data_dir: Path, config: Config, tokenizer) -> tuple[list[Example], list[Example], dict]:
    """Training and validation examples (packed when asked) and statistics for the start event."""
    hp = config.hyperparameters
    train, train_stats = prepare_file(data_dir / config.train_file, tokenizer, hp)
    if config.validation_file:
        validation, validation_stats = prepare_file(data_dir / config.validation_file, tokenizer, hp)
    else:
        train, validation = split_validation(train, hp.validation_split, hp.seed)
        validation_stats = None
    if not train:
        raise DataError(f"No training example left in {config.train_file}: every example lost its answer "
                        "to truncation or has no assistant turn (raise max_seq_length or set train_on_prompt).")
    stats = {"format": train_stats.format, "train_examples": len(train), "eval_examples": len(validation),
             "truncated_examples": train_stats.truncated + (validation_stats.truncated if validation_stats else 0),
             "dropped_examples": train_stats.dropped + (validation_stats.dropped if validation_stats else 0)}
    if hp.packing:
        train = pack_examples(train, hp.max_seq_length)
        stats["packed_sequences"] = len(train)
    return train, validation, stats


def collate(examples: list[Example], pad_id: int, pad_to_multiple: int = 1) -> dict:
    """A batch of tensors, right-padded; packed batches carry positions and no mask (so packing is detected)."""
    width = max(map(len, examples))
    width = -(-width // pad_to_multiple) * pad_to_multiple
    ids, labels, extra = [], [], []
    for example in examples:
        pad = width - len(example)
        ids.append(example.input_ids + [pad_id] * pad)
        labels.append(example.labels + [IGNORE_INDEX] * pad)
        if example.position_ids is None:
            extra.append([1] * len(example) + [0] * pad)
        else:  # padding becomes one more packed sequence, attended by nothing real
            extra.append(example.position_ids + list(range(pad)))
    key = "attention_mask" if examples[0].position_ids is None else "position_ids"
    return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), key: torch.tensor(extra)}


def count_targets(batch: dict) -> int:
    """How many tokens of the batch carry loss (the model shifts labels by one)."""
    return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())


# ---------------------------------------------------------------------------------------------------------------
# Models


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
    if config.method == "qlora" and not cuda:
        raise ConfigError("QLoRA needs a CUDA GPU: it quantizes the model to 4 bits with bitsandbytes, which has "
                          "no CPU path here. Use method lora on this machine, or run the job on Kaggle's GPUs.")
    capability = torch.cuda.get_device_capability(0) if cuda else None
    name = torch.cuda.get_device_name(0) if cuda else "cpu"
    return Hardware(torch.device("cuda:0" if cuda else "cpu"), choose_precision(capability, config.precision), name)


def load_options(config: Config, hardware: Hardware, dtype) -> dict:
    """from_pretrained arguments: the weights' dtype, the GPU, and 4-bit NF4 quantization for QLoRA."""
    options = {"dtype": dtype}
    if hardware.device.type == "cuda":
        options["device_map"] = {"": 0}
    if config.method == "qlora":
        if not transformers.utils.is_bitsandbytes_available():
            raise ConfigError("QLoRA needs the bitsandbytes package: pip install bitsandbytes.")
        options["quantization_config"] = transformers.BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch_dtype(hardware.precision))
    return options


def load_model(config: Config, hardware: Hardware, tokenizer):
    """The base model on the device: frozen 16-bit weights for LoRA, 4-bit for QLoRA, fp32 master weights for full."""
    dtype = torch.float32 if config.method == "full" else torch_dtype(hardware.precision)
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


def prepare_for_training(model, config: Config):
    """Gradient checkpointing, the QLoRA preparation, and the LoRA adapter for the adapter methods."""
    hp = config.hyperparameters
    checkpointing = {"use_reentrant": False}
    if config.method == "qlora":
        model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=hp.gradient_checkpointing,
                                                     gradient_checkpointing_kwargs=checkpointing)
    elif hp.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpointing)
    if config.method == "full":
        return model
    adapter = peft.LoraConfig(r=hp.lora_r, lora_alpha=hp.lora_alpha, lora_dropout=hp.lora_dropout,
                              target_modules=lora_targets(hp, model.config.model_type), task_type="CAUSAL_LM")
    try:
        return peft.get_peft_model(model, adapter)
    except ValueError as error:  # peft's message names the modules it could not find
        raise ConfigError(f"Cannot apply LoRA: {error}") from error


# ---------------------------------------------------------------------------------------------------------------
# Training


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


def shuffled(items: list, seed: int) -> list:
    """A copy of items in a seeded random order."""
    order = list(items)
    random.Random(seed).shuffle(order)  # noqa: S311  (reproducible data order, not secrecy)
    return order


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

    def autocast(self):
        """Mixed precision for fp16/bf16 runs; a no-op in fp32."""
        dtype = torch_dtype(self.hardware.precision)
        return torch.autocast(self.hardware.device.type, dtype=dtype, enabled=self.hardware.precision != "fp32")

    def batch(self, examples: list[Example]) -> dict:
        """Collated tensors on the device; multiples of 8 suit the GPU's tensor cores."""
        pad_to = 8 if self.hardware.device.type == "cuda" else 1
        tensors = collate(examples, self.tokenizer.pad_token_id, pad_to)
        return {key: value.to(self.hardware.device, non_blocking=True) for key, value in tensors.items()}

    def loss(self, batch: dict, targets: int):
        """The summed token loss of batch divided by targets (the whole step's count, for exact accumulation)."""
        with self.autocast():
            return self.model(**batch, num_items_in_batch=targets, use_cache=False).loss

    def train_step(self) -> None:
        """One optimizer step over its micro-batches, the loss averaged over every target token of the step."""
        started = time.perf_counter()
        groups = [[self.train_set[i] for i in indices] for indices in self.plan.micro_batches(self.step)]
        batches = [self.batch(examples) for examples in groups]
        targets = sum(count_targets(batch) for batch in batches)
        for batch in batches:
            loss = self.loss(batch, targets)
            self.scaler.scale(loss).backward()
            self.meter.window_loss += loss.detach() * targets
        self.update_weights()
        if self.hardware.device.type == "cuda":
            torch.cuda.synchronize()  # so that the step's time is the GPU's, not the kernel launches'
        self.meter.window_targets += targets
        self.meter.tokens += sum(len(example) for examples in groups for example in examples)
        self.meter.seconds += time.perf_counter() - started
        self.meter.steps += 1

    def update_weights(self) -> None:
        """Clip the gradients, step the optimizer and the schedule, clear the gradients."""
        if self.hp.max_grad_norm:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.trainable, self.hp.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def evaluate(self) -> float:
        """The mean loss per target token over the validation examples."""
        self.model.eval()
        total, targets = 0.0, 0
        with torch.no_grad():
            for start in range(0, len(self.validation), self.hp.batch_size):
                batch = self.batch(self.validation[start:start + self.hp.batch_size])
                count = count_targets(batch)
                total += float(self.loss(batch, count)) * count
                targets += count
        self.model.train()
        return total / targets

    def position(self) -> dict:
        """The protocol's common fields for the current step."""
        return {"step": self.step, "total_steps": self.plan.total_steps, "epoch": self.plan.epoch_at(self.step)}

    def report_progress(self) -> None:
        """A progress line: the loss since the last one, learning rate, throughput and time left."""
        self.last_loss = self.meter.take_window_loss()
        event = self.reporter.emit(
            "progress", **self.position(), loss=self.last_loss, learning_rate=self.scheduler.get_last_lr()[0],
            tokens_per_second=self.meter.tokens_per_second(),
            eta_seconds=self.meter.eta_seconds(self.plan.total_steps - self.step))
        self.history.append(event)

    def report_eval(self) -> None:
        """Evaluate and report the validation loss."""
        self.last_eval_loss = self.evaluate()
        self.history.append(self.reporter.emit("eval", **self.position(), eval_loss=self.last_eval_loss))

    def save_checkpoint(self) -> None:
        """Write a checkpoint atomically (a folder renamed into place), then drop all but the newest ones."""
        root = self.output / "checkpoints"
        final, temporary = root / f"step-{self.step:08d}", root / f".partial-step-{self.step:08d}"
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir(parents=True)
        torch.save(self.state(), temporary / "state.pt")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(temporary, final)
        for old in checkpoint_dirs(root)[:-CHECKPOINTS_KEPT]:
            shutil.rmtree(old)
        self.reporter.emit("checkpoint", **self.position(), path=str(final.relative_to(self.output)))

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

    def fit(self) -> None:
        """Train to the last step, reporting, evaluating and checkpointing at the configured intervals."""
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
            if STOP_REQUESTED.is_set() and self.step < total:
                self.save_checkpoint()
                raise Interrupted(self.step)


# ---------------------------------------------------------------------------------------------------------------
# Outputs


def save_model(run: Run) -> str:
    """The adapter (or, for full fine-tuning, the whole model) as safetensors with the tokenizer files."""
    folder = "model" if run.config.method == "full" else "adapter"
    run.model.save_pretrained(run.output / folder, safe_serialization=True)
    run.tokenizer.save_pretrained(run.output / folder)
    return folder


def save_merged_model(config: Config, hardware: Hardware, tokenizer, output: Path) -> str:
    """The base model with the adapter merged in, in the run's 16-bit precision (fp32 on a CPU).

    The base is loaded again unquantized on the CPU, so that a QLoRA adapter merges into real weights.
    """
    dtype = torch_dtype(hardware.precision)
    if config.base_model == TINY_MODEL_ID:
        base = build_tiny_model(tokenizer).to(dtype)
    else:
        base = transformers.AutoModelForCausalLM.from_pretrained(config.base_model, dtype=dtype)
    merged = peft.PeftModel.from_pretrained(base, output / "adapter").merge_and_unload()
    merged.save_pretrained(output / "merged", safe_serialization=True)
    tokenizer.save_pretrained(output / "merged")
    return "merged"


def parameter_counts(model) -> dict:
    """Trainable and total parameters."""
    counts = {"trainable_parameters": 0, "total_parameters": 0}
    for parameter in model.parameters():
        counts["total_parameters"] += parameter.numel()
        counts["trainable_parameters"] += parameter.numel() if parameter.requires_grad else 0
    return counts


def resolved_arguments(run: Run, stats: dict) -> dict:
    """The config with every default filled in, and what the program decided from it."""
    targets = getattr(run.model, "peft_config", {}).get("default")
    return {
        "config": asdict(run.config),
        "resolved": {
            "device": run.hardware.name, "precision": run.hardware.precision,
            "lora_target_modules": sorted(targets.target_modules) if targets else None,
            "total_steps": run.plan.total_steps, "steps_per_epoch": run.plan.steps_per_epoch,
            "warmup_steps": run.warmup_steps, **parameter_counts(run.model), "data": stats,
        },
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                     "transformers": transformers.__version__, "peft": peft.__version__},
    }


def write_json(path: Path, value) -> None:
    """Write value as indented JSON."""
    path.write_text(json.dumps(value, indent=2, default=str) + "\n")


# ---------------------------------------------------------------------------------------------------------------
# The program


def start_run(config: Config, data_dir: Path, output: Path, reporter: Reporter) -> tuple[Run, dict]:
    """Load tokenizer, data and model, resume from a checkpoint when one exists, and report the start."""
    hardware = detect_hardware(config)
    transformers.set_seed(config.hyperparameters.seed)
    tokenizer = load_tokenizer(config.base_model)
    train_set, validation, stats = load_datasets(data_dir, config, tokenizer)
    model = prepare_for_training(load_model(config, hardware, tokenizer), config)
    run = Run(config, hardware, model, tokenizer, (train_set, validation), output, reporter)
    resumed_from = run.resume()
    arguments = resolved_arguments(run, stats)
    write_json(output / "training_args.json", arguments)
    details = {k: v for k, v in arguments["resolved"].items() if k not in ("data", "total_steps")}
    reporter.emit("start", **run.position(), resumed_from_step=resumed_from, base_model=config.base_model,
                  method=config.method, **details, **stats)
    return run, stats


def load_training_stack() -> None:
    """Import torch, transformers, peft and their helpers into this module; refuse a stack older than needed."""
    global jinja2, peft, tokenizers, torch, transformers
    try:
        import jinja2
        import peft
        import tokenizers
        import torch
        import transformers
    except ModuleNotFoundError as error:
        raise TrainingError(f"The training packages are not installed ({error.name} is missing): "
                            "pip install -r requirements-train.txt.") from error
    found = tuple(int(part) for part in transformers.__version__.split(".")[:2])
    if found < MIN_TRANSFORMERS:
        raise TrainingError(f"transformers {transformers.__version__} is too old: this program needs "
                            f"{'.'.join(map(str, MIN_TRANSFORMERS))} or newer (pip install -U transformers).")


def train(config_path: Path, data_dir: Path, output: Path, reporter: Reporter) -> dict:
    """The whole run, from the config file to the saved outputs; returns the done event."""
    config = load_config(config_path)
    load_training_stack()
    run, stats = start_run(config, data_dir, output, reporter)
    run.fit()
    outputs = {"model": save_model(run)}
    if config.merge_adapter and config.method != "full":
        outputs["merged"] = save_merged_model(config, run.hardware, run.tokenizer, output)
    final = {"loss": run.last_loss, "eval_loss": run.last_eval_loss,
             "tokens_per_second": run.meter.tokens_per_second(), "train_seconds": round(run.meter.seconds, 2)}
    write_json(output / "metrics.json", {**final, **run.position(), "data": stats, "history": run.history})
    return reporter.emit("done", **run.position(), **final, eta_seconds=0, outputs=outputs)


def is_out_of_memory(error: BaseException) -> bool:
    """Whether error is the GPU (or the host, for CPU runs) running out of memory."""
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
        Reporter().emit("error", message=f"Bad command line: {message}.")
        super().error(message)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """--config, --data and --output, all required."""
    parser = ArgumentParser(description="Fine-tune a causal language model (see docs/TRAINING.md).")
    parser.add_argument("--config", type=Path, required=True, help="the config JSON file")
    parser.add_argument("--data", type=Path, required=True, help="the folder holding the dataset files")
    parser.add_argument("--output", type=Path, required=True, help="the folder for checkpoints and outputs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the program; every failure ends with an error event and exit status 1."""
    args = parse_args(argv)
    reporter = Reporter(args.output / "progress.jsonl")
    signal.signal(signal.SIGTERM, lambda _signum, _frame: STOP_REQUESTED.set())
    try:
        args.output.mkdir(parents=True, exist_ok=True)
        train(args.config, args.data, args.output, reporter)
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
