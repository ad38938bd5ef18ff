"""A fine-tuning job request in OpenAI's terms translated into the Studio's `JobRequest`; no Flask here.

`learning_rate_multiplier` works as OpenAI documents it: the rate used is a base rate times the multiplier. The
base is the Studio's LoRA rate for the model's size (smaller models take larger steps), a tenth of it for full
fine-tuning; "auto" is a multiplier of 1 (docs/OPENAI.md).
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass

from app import catalog
from app.errors import ValidationFailed
from app.jobs.service import JobRequest
from app.openai_api import ids
from trainer.config import METHODS

FIELDS = {"model", "training_file", "validation_file", "suffix", "seed", "metadata", "method", "hyperparameters",
          "integrations"}
# (largest parameter count, base LoRA learning rate), smallest models first; unknown sizes take the last rate.
BASE_RATES = ((1_000_000_000, 2e-4), (4_000_000_000, 1e-4), (None, 5e-5))
FULL_RATE_FACTOR = 0.1
# How OpenAI's method types run here: supervised as LoRA, dpo as the trainer's DPO (trainer/preference.py).
METHOD_TYPES = {"supervised": "lora", "dpo": "dpo"}
NUMBERS = {"n_epochs": (int, 1, 50), "batch_size": (int, 1, 256), "learning_rate_multiplier": (float, 0.0, 10.0),
           "beta": (float, 0.0, 10.0)}
MAX_SUFFIX, MAX_METADATA_KEYS, MAX_KEY, MAX_VALUE = 64, 16, 64, 512


@dataclass(frozen=True)
class Translated:
    """The Studio's job request and what only the dialect keeps (metadata, suffix)."""

    request: JobRequest
    metadata: dict | None
    suffix: str | None


def base_learning_rate(model: str, method: str) -> float:
    """The learning rate a multiplier of 1 means for this model and method."""
    entry = catalog.find(model)
    size = entry.parameters if entry else None
    rate = next(rate for limit, rate in BASE_RATES if limit is None or (size is not None and size <= limit))
    return rate * (FULL_RATE_FACTOR if method == "full" else 1.0)


def translate(payload: dict) -> Translated:
    """The job request a create call describes; ValidationFailed names the first bad field."""
    unknown = sorted(set(payload) - FIELDS)
    if unknown:
        raise ValidationFailed(f"Unrecognized request argument supplied: {unknown[0]}.", details={"field": unknown[0]})
    if payload.get("integrations"):
        raise ValidationFailed("Integrations are not supported by the Studio.", details={"field": "integrations"})
    model = _required_string(payload, "model")
    training = ids.row_id(ids.FILE, _required_string(payload, "training_file"), "training_file")
    validation = payload.get("validation_file")
    validation_id = ids.row_id(ids.FILE, validation, "validation_file") if validation else None
    method, given = _method(payload)
    hyperparameters = _hyperparameters(model, method, given, _seed(payload.get("seed")))
    request = JobRequest(name=_suffix(payload.get("suffix")) or "", dataset_id=training, base_model=model,
                         method=method, validation_dataset_id=validation_id, hyperparameters=hyperparameters)
    return Translated(request, _metadata(payload.get("metadata")), _suffix(payload.get("suffix")))


def _required_string(payload: dict, name: str) -> str:
    """A field that must be a non-empty string."""
    value = payload.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed(f"Missing required parameter: '{name}'.", details={"field": name})
    return value.strip()


def _method(payload: dict) -> tuple[str, dict]:
    """The Studio method and the given hyperparameters, from `method` or the deprecated `hyperparameters`."""
    method = payload.get("method")
    if method is None:
        return "lora", _object(payload.get("hyperparameters"), "hyperparameters")
    kind = method.get("type") if isinstance(method, dict) else None
    studio_method = METHOD_TYPES.get(kind)
    if studio_method not in METHODS:
        supported = ", ".join(name for name, ours in METHOD_TYPES.items() if ours in METHODS)
        raise ValidationFailed(f"method.type {kind!r} is not supported here; use one of: {supported}.",
                               details={"field": "method.type"})
    settings = _object(method.get(kind), f"method.{kind}")
    return studio_method, _object(settings.get("hyperparameters"), f"method.{kind}.hyperparameters")


def _object(value, name: str) -> dict:
    """An optional JSON object."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationFailed(f"{name} must be an object.", details={"field": name})
    return value


def _hyperparameters(model: str, method: str, given: dict, seed: int) -> dict:
    """The Studio's hyperparameters for OpenAI's: epochs, batch size, learning rate (by the multiplier), seed."""
    values = {name: _number(given, name) for name in given}
    unknown = sorted(set(values) - set(NUMBERS) - ({"beta"} if method == "dpo" else set()))
    if unknown or ("beta" in values and method != "dpo"):
        name = unknown[0] if unknown else "beta"
        raise ValidationFailed(f"Unknown hyperparameter: {name}.", details={"field": f"hyperparameters.{name}"})
    multiplier = values.get("learning_rate_multiplier")
    # OpenAI reports metrics at every step, so the dialect logs every step too.
    studio = {"seed": seed, "learning_rate": base_learning_rate(model, method) * (multiplier or 1.0),
              "logging_steps": 1}
    for ours, theirs in (("epochs", "n_epochs"), ("batch_size", "batch_size"), ("beta", "beta")):
        if values.get(theirs) is not None:
            studio[ours] = values[theirs]
    return studio


def _number(given: dict, name: str):
    """One hyperparameter: "auto" (None: the Studio's default) or a number in its range."""
    value = given[name]
    if value == "auto" or name not in NUMBERS:
        return None if value == "auto" else value
    kind, low, high = NUMBERS[name]
    whole = isinstance(value, int) and not isinstance(value, bool)
    if not (whole or (kind is float and isinstance(value, float))) or not low <= value <= high or value == low == 0:
        wanted = "an integer" if kind is int else "a number"
        raise ValidationFailed(f"hyperparameters.{name} must be \"auto\" or {wanted} from {low} to {high}.",
                               details={"field": f"hyperparameters.{name}"})
    return value


def _seed(value) -> int:
    """The given seed, or a random one (reported on the job, so the run can be repeated)."""
    if value is None:
        return secrets.randbelow(2**31)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**31:
        raise ValidationFailed("seed must be an integer from 0 to 2147483647.", details={"field": "seed"})
    return value


def _suffix(value) -> str | None:
    """The model suffix: up to 64 letters, digits, `-` or `_`."""
    if value in (None, ""):
        return None
    if not isinstance(value, str) or len(value) > MAX_SUFFIX or not all(c.isalnum() or c in "-_" for c in value):
        raise ValidationFailed(f"suffix must be up to {MAX_SUFFIX} letters, digits, '-' or '_'.",
                               details={"field": "suffix"})
    return value


def _metadata(value) -> dict | None:
    """Up to 16 string pairs, keys up to 64 characters, values up to 512."""
    if value is None:
        return None
    valid = isinstance(value, dict) and len(value) <= MAX_METADATA_KEYS and all(
        isinstance(k, str) and isinstance(v, str) and len(k) <= MAX_KEY and len(v) <= MAX_VALUE
        for k, v in value.items())
    if not valid:
        raise ValidationFailed(f"metadata must be an object of at most {MAX_METADATA_KEYS} string values (keys up "
                               f"to {MAX_KEY} characters, values up to {MAX_VALUE}).", details={"field": "metadata"})
    return value
