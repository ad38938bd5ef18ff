"""The new-job form: its hyperparameter fields, their starting values, and a JobRequest from what was posted."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.errors import ValidationFailed
from app.jobs.service import PRESETS, JobRequest
from trainer.config import SCHEDULERS, Hyperparameters

DEFAULT_PRESET = "balanced"
DEFAULT_MODEL = "qwen2.5-0.5b-instruct"


@dataclass(frozen=True)
class Choice:
    """One option of a radio group: its value, its label, and a line of help."""

    value: str
    label: str
    help: str


METHOD_CHOICES = {choice.value: choice for choice in (
    Choice("lora", _l("LoRA"), _l("a small adapter on 16-bit weights")),
    Choice("qlora", _l("QLoRA"), _l("an adapter on 4-bit weights: least memory; needs a CUDA GPU")),
    Choice("full", _l("Full"), _l("every weight: small models only")),
)}
PRESET_CHOICES = tuple(Choice(value, label, help_) for value, label, help_ in (
    ("quick", _l("Quick test"), _l("1 epoch, short sequences: check the data and the pipeline in minutes.")),
    ("balanced", _l("Balanced"), _l("3 epochs of LoRA r=16: a sound first real run.")),
    ("thorough", _l("Thorough"),
     _l("5 epochs, a lower learning rate, r=32 and long sequences: the best quality, slowest.")),
))


@dataclass(frozen=True)
class Field:
    """One hyperparameter input of the form."""

    name: str
    label: str
    kind: str  # int, float, choice or bool
    help: str = ""
    advanced: bool = False
    minimum: float | None = None
    step: str = "1"
    optional: bool = False
    choices: tuple[str, ...] = ()
    moves_estimate: bool = False  # a change refreshes the memory estimate

    @property
    def input_id(self) -> str:
        """The id of its input element (and the stem of its error's id)."""
        return f"hp-{self.name.replace('_', '-')}"


FIELDS: tuple[Field, ...] = (
    Field("epochs", _l("Epochs"), "int", _l("Passes over the training examples."), minimum=1),
    Field("learning_rate", _l("Learning rate"), "float", _l("Peak learning rate of AdamW."), minimum=0,
          step="any"),
    Field("batch_size", _l("Batch size"), "int", _l("Sequences per micro-batch; the biggest lever on memory."),
          minimum=1, moves_estimate=True),
    Field("gradient_accumulation_steps", _l("Gradient accumulation"), "int",
          _l("Micro-batches per optimizer step (effective batch = batch size × this)."), minimum=1),
    Field("max_seq_length", _l("Max sequence length"), "int", _l("Longer examples are cut; memory grows with it."),
          minimum=16, moves_estimate=True),
    Field("lora_r", _l("LoRA rank"), "int", _l("Adapter size (LoRA and QLoRA)."), minimum=1, moves_estimate=True),
    Field("lora_alpha", _l("LoRA alpha"), "int", _l("Adapter scaling; usually twice the rank."), minimum=1),
    Field("max_steps", _l("Max steps"), "int", _l("Stop after this many optimizer steps instead of whole epochs."),
          advanced=True, minimum=1, optional=True),
    Field("lora_dropout", _l("LoRA dropout"), "float", advanced=True, minimum=0, step="any"),
    Field("warmup_ratio", _l("Warm-up ratio"), "float", _l("Share of the steps spent warming the learning rate up."),
          advanced=True, minimum=0, step="any"),
    Field("lr_scheduler", _l("Learning-rate schedule"), "choice", advanced=True, choices=SCHEDULERS),
    Field("weight_decay", _l("Weight decay"), "float", advanced=True, minimum=0, step="any"),
    Field("eval_steps", _l("Evaluate every (steps)"), "int", advanced=True, minimum=1),
    Field("save_steps", _l("Checkpoint every (steps)"), "int", advanced=True, minimum=1),
    Field("logging_steps", _l("Report progress every (steps)"), "int", advanced=True, minimum=1),
    Field("validation_split", _l("Validation split"), "float",
          _l("Share of the training file held out for evaluation when no validation dataset is chosen."),
          advanced=True, minimum=0, step="any"),
    Field("seed", _l("Seed"), "int", advanced=True, minimum=0),
    Field("packing", _l("Pack several examples into each sequence"), "bool", advanced=True),
    Field("gradient_checkpointing", _l("Gradient checkpointing (less memory, a little slower)"), "bool",
          advanced=True, moves_estimate=True),
    Field("train_on_prompt", _l("Train on the prompts too, not only on the answers"), "bool", advanced=True),
)
BY_NAME = {field.name: field for field in FIELDS}
CHOICE_FIELDS = ("name", "dataset_id", "validation_dataset_id", "base_model", "method", "backend", "preset")


def initial_values(args: Mapping, backends: list[str]) -> dict:
    """The form's values on first display: the chosen (or balanced) preset over the training defaults."""
    preset = args.get("preset") if args.get("preset") in PRESETS else DEFAULT_PRESET
    values = {"name": "", "dataset_id": args.get("dataset_id", ""), "validation_dataset_id": "",
              "base_model": args.get("base_model") or DEFAULT_MODEL, "method": args.get("method") or "lora",
              "backend": args.get("backend") if args.get("backend") in backends else backends[0], "preset": preset}
    return {**values, **preset_values(preset)}


def preset_values(preset: str) -> dict:
    """Every hyperparameter field's value under a preset, as the form shows it."""
    defaults = {f.name: getattr(Hyperparameters(), f.name) for f in fields(Hyperparameters)}
    merged = {**defaults, **PRESETS.get(preset, {})}
    return {name: _shown(merged.get(name)) for name in BY_NAME}


def _shown(value) -> str | bool:
    """A value as an input shows it (booleans stay booleans, for checkboxes)."""
    if value is None or isinstance(value, bool):
        return bool(value) if isinstance(value, bool) else ""
    return f"{value:g}" if isinstance(value, float) else str(value)


def posted_values(form: Mapping) -> dict:
    """What the user posted, to show the form again as they left it."""
    values = {name: form.get(name, "") for name in CHOICE_FIELDS}
    for field in FIELDS:
        values[field.name] = field.name in form if field.kind == "bool" else form.get(field.name, "")
    values["ignore_memory_warning"] = form.get("ignore_memory_warning") == "true"
    return values


def job_request(form: Mapping) -> JobRequest:
    """A JobRequest from the posted form; ValidationFailed names each input that is not a number."""
    hyperparameters, problems = {}, {}
    for field in FIELDS:
        try:
            value = _parsed(field, form)
        except ValueError as error:
            problems[f"hyperparameters.{field.name}"] = str(error)
            continue
        if value is not None:
            hyperparameters[field.name] = value
    if not form.get("dataset_id"):
        problems["dataset_id"] = _("Choose the dataset to train on.")
    if problems:
        raise ValidationFailed(_("The job has invalid fields."), details=problems)
    return JobRequest(name=form.get("name", ""), dataset_id=form.get("dataset_id") or None,
                      base_model=form.get("base_model", ""), method=form.get("method", "lora"),
                      backend=form.get("backend") or None,
                      validation_dataset_id=form.get("validation_dataset_id") or None,
                      preset=form.get("preset") or None, hyperparameters=hyperparameters,
                      ignore_memory_warning=form.get("ignore_memory_warning") == "true")


def _parsed(field: Field, form: Mapping):
    """The field's value from the form (None when left empty); ValueError says what to enter."""
    if field.kind == "bool":
        return field.name in form
    raw = (form.get(field.name) or "").strip()
    if not raw:
        if field.optional:
            return None
        raise ValueError(_("Enter a value."))
    if field.kind == "choice":
        return raw
    try:
        return int(raw) if field.kind == "int" else float(raw)
    except ValueError:
        raise ValueError(_("Enter a whole number.") if field.kind == "int" else _("Enter a number.")) from None


def field_errors(error: ValidationFailed) -> dict:
    """The problems of a refused job keyed by form input name (hyperparameters.x → x); the rest under 'form'."""
    details = error.details if isinstance(error.details, dict) else {}
    errors = {key.removeprefix("hyperparameters."): _beside_field(key, value) for key, value in details.items()}
    errors.setdefault("form", error.message)
    return errors


def _beside_field(key: str, problem):
    """A problem as shown under its input, whose label already names it: "hyperparameters.x must be…" → "Must be…"."""
    if not isinstance(problem, str) or not problem.startswith(f"{key} "):
        return problem
    rest = problem.removeprefix(f"{key} ")
    return rest[:1].upper() + rest[1:]
