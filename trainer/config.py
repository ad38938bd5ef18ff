"""The config file of a run: its keys, their defaults and checks, and the precision it resolves to.

Standard library only: the Studio checks hyperparameters with it before a job is queued.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from trainer.errors import ConfigError

TINY_MODEL_ID = "tiny-random-llama"
METHODS = ("lora", "qlora", "full")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
DEFAULT_SAMPLE_COUNT = 8
MAX_SAMPLE_COUNT = 32
# Flat names, because a Kaggle dataset is one folder: "init-adapter--adapter_config.json" and so on.
INIT_ADAPTER_PREFIX = "init-adapter--"


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
    # Judging the result (trainer/samples.py): how many prompts to answer, and the user's own prompts.
    sample_count: int = DEFAULT_SAMPLE_COUNT
    sample_prompts: list | None = None
    # Files in the data folder named INIT_ADAPTER_PREFIX + <adapter file>: an earlier job's adapter to start from.
    init_adapter: bool = False


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
    check_samples(config)
    for name in ("train_file", "validation_file"):
        value = getattr(config, name)
        if value is not None and (not isinstance(value, str) or Path(value).name != value):
            raise ConfigError(f"{name} must be a file name inside the data folder, not {value!r}.")
    return config


def check_samples(config: Config) -> None:
    """sample_count within bounds; sample_prompts a list of conversations, each of role/content messages."""
    count = config.sample_count
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_SAMPLE_COUNT:
        raise ConfigError(f"sample_count must be an integer from 0 to {MAX_SAMPLE_COUNT}, not {count!r}.")
    if config.sample_prompts is None:
        return
    if not isinstance(config.sample_prompts, list):
        raise ConfigError("sample_prompts must be a list of conversations.")
    for index, messages in enumerate(config.sample_prompts):
        problem = conversation_problem(messages)
        if problem:
            raise ConfigError(f"sample_prompts[{index}]: {problem}")


def conversation_problem(messages) -> str | None:
    """What is wrong with a prompt conversation (role/content messages ending with a user turn), or None."""
    if not isinstance(messages, list) or not messages:
        return "must be a non-empty list of messages."
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant"):
            return f"message {index} needs a role of system, user or assistant."
        if not isinstance(message.get("content"), str) or not message["content"].strip():
            return f"message {index} needs a non-empty content string."
    if messages[-1]["role"] != "user":
        return "the last message must be the user's."
    return None


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
