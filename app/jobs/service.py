"""Jobs: check and create them, cancel them, list them; no Flask here."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace

from app import catalog
from app.errors import Conflict, NotFound, ValidationFailed
from app.jobs import judging, states
from app.jobs.backends import Backend
from app.jobs.events import add_event, move
from app.models import Dataset, Job, User, utcnow
from app.pagination import Page, PageRequest, paginate
from trainer.config import METHODS, PREFERENCE_METHODS, ConfigError, Hyperparameters, parse_hyperparameters
from trainer.records import PAIR_FORMATS

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}$")
MAX_NAME_LENGTH = 200
PRESETS = {
    "quick": {"epochs": 1, "learning_rate": 2e-4, "batch_size": 4, "gradient_accumulation_steps": 1,
              "max_seq_length": 512, "lora_r": 8, "lora_alpha": 16, "eval_steps": 25, "save_steps": 50},
    "balanced": {"epochs": 3, "learning_rate": 2e-4, "batch_size": 4, "gradient_accumulation_steps": 4,
                 "max_seq_length": 1024, "lora_r": 16, "lora_alpha": 32},
    "thorough": {"epochs": 5, "learning_rate": 1e-4, "batch_size": 4, "gradient_accumulation_steps": 8,
                 "max_seq_length": 2048, "lora_r": 32, "lora_alpha": 64, "warmup_ratio": 0.05},
    # Preference tuning moves a model that already answers well, so it takes a far lower learning rate than SFT
    # and few passes; β 0.1 is DPO's usual strength (and ORPO's λ from its paper).
    "preference": {"epochs": 1, "learning_rate": 5e-5, "batch_size": 4, "gradient_accumulation_steps": 4,
                   "max_seq_length": 1024, "lora_r": 16, "lora_alpha": 32, "warmup_ratio": 0.1, "beta": 0.1},
}
# The preset a job without one gets, by whether its method learns from examples or from pairs.
DEFAULT_PRESETS = {False: "balanced", True: "preference"}


@dataclass(frozen=True)
class JobRequest:
    """What a user asks for when creating a job, as plain values from a form or JSON."""

    name: str
    dataset_id: object
    base_model: str
    method: str = "lora"
    backend: str | None = None         # the first enabled backend when not given
    validation_dataset_id: object = None
    preset: str | None = None
    hyperparameters: dict | None = None
    ignore_memory_warning: bool = False
    sample_count: object = None         # how many prompts the run answers at its end (trainer/samples.py)
    sample_prompts: object = None       # the user's own prompts: strings or conversations
    init_from: object = None            # {"job_id", "checkpoint_step"}: a finished job's adapter to continue


def create_job(owner: User, request: JobRequest, backends: dict[str, Backend]) -> Job:
    """A queued job after every check against the enabled backends; ValidationFailed names each bad field."""
    request = replace(request, backend=request.backend or next(iter(backends)))
    problems: dict = {}
    dataset = _ready_dataset(owner, request.dataset_id, "dataset_id", problems)
    validation = None
    if request.validation_dataset_id not in (None, ""):
        validation = _ready_dataset(owner, request.validation_dataset_id, "validation_dataset_id", problems)
    hyperparameters = check_hyperparameters(request.preset, request.hyperparameters, problems,
                                            DEFAULT_PRESETS[request.method in PREFERENCE_METHODS])
    _check_choices(owner, request, backends, problems)
    _check_method_fits(request, hyperparameters, {"dataset_id": dataset, "validation_dataset_id": validation},
                       problems)
    options = judging.run_options(owner, request, problems)
    if problems:
        raise ValidationFailed("The job has invalid fields.", details=problems)
    backend = backends[request.backend]
    estimate = memory_warning(request, hyperparameters, backend.gpu_gb, backend.gpus)
    if estimate and not request.ignore_memory_warning:
        raise ValidationFailed("The model may not fit the GPU; send ignore_memory_warning=true to try anyway.",
                               details={"memory": estimate})
    job = Job.create(owner=owner, name=_name(request, dataset), dataset=dataset, validation_dataset=validation,
                     base_model=request.base_model.strip(), method=request.method, backend=request.backend,
                     hyperparameters=hyperparameters, run_options=options,
                     backend_account=backends[request.backend].account_for(owner.id))
    add_event(job, "status", "queued", {"to": states.QUEUED})
    return job


def _name(request: JobRequest, dataset: Dataset) -> str:
    """The job's name, or one made from the model and dataset."""
    name = (request.name or "").strip() or f"{request.base_model.split('/')[-1]} on {dataset.name}"
    return name[:MAX_NAME_LENGTH]


def _ready_dataset(owner: User, dataset_id, field: str, problems: dict) -> Dataset | None:
    """The owner's dataset if it is ready to train on; otherwise the problem is recorded under field."""
    try:
        dataset = Dataset.get_owned(dataset_id, owner)
    except NotFound:
        problems[field] = "No such dataset among yours."
        return None
    if dataset.status != "ready":
        problems[field] = f"The dataset is {dataset.status}; only a ready dataset can be trained on."
    return dataset


def check_hyperparameters(preset: str | None, given: dict | None, problems: dict,
                          default_preset: str = "balanced") -> dict:
    """The preset's values overridden by the given ones, each checked by the training program's own rules."""
    if preset not in (None, "", *PRESETS):
        problems["preset"] = f"Use one of {', '.join(PRESETS)}."
    if given is not None and not isinstance(given, dict):
        problems["hyperparameters"] = "Send an object of name: value."
        return {}
    merged = {**PRESETS.get(preset or default_preset, {}), **(given or {})}
    for name, value in merged.items():
        try:
            parse_hyperparameters({name: value})
        except ConfigError as error:
            problems[f"hyperparameters.{name}"] = str(error)
    return merged


def _check_choices(owner: User, request: JobRequest, backends: dict[str, Backend], problems: dict) -> None:
    """The model, the method and the backend (usable by this owner: a Kaggle job needs an account to run on)."""
    model = (request.base_model or "").strip()
    if catalog.find(model) is None and not HUB_ID.match(model):
        problems["base_model"] = "Choose a model from the catalog or give a Hugging Face id like owner/name."
    if request.method not in METHODS:
        problems["method"] = f"Use one of {', '.join(METHODS)}."
    if request.backend not in backends:
        problems["backend"] = f"Use one of the enabled backends: {', '.join(backends)}."
    elif found := backends[request.backend].configuration_problems(owner.id):
        problems["backend"] = "; ".join(found)


def _check_method_fits(request: JobRequest, hyperparameters: dict, datasets: dict, problems: dict) -> None:
    """A preference method (dpo, orpo) trains on preference datasets only, and the other methods never on them."""
    pairs_wanted = request.method in PREFERENCE_METHODS
    for field, dataset in datasets.items():
        if dataset is None or field in problems or dataset.format is None:
            continue
        if pairs_wanted and dataset.format not in PAIR_FORMATS:
            problems[field] = (f"Method {request.method} learns from preference pairs, but this dataset is "
                               f"{dataset.format}: choose a preference dataset, or method lora, qlora or full.")
        elif not pairs_wanted and dataset.format in PAIR_FORMATS:
            problems[field] = ("This dataset holds preference pairs, which supervised fine-tuning cannot learn "
                               "from: use method dpo or orpo.")
    if pairs_wanted and hyperparameters.get("packing"):
        problems["hyperparameters.packing"] = "Packing is not available for dpo and orpo: each pair trains whole."


def memory_warning(request: JobRequest, hyperparameters: dict, gpu_gb: float | None, gpus: int = 1) -> dict | None:
    """The memory estimate when the job would not fit its backend's GPU (of gpu_gb GB, None: unknown), else None.
    Data parallel over gpus, each GPU holds the whole model and its share of each micro-batch."""
    entry = catalog.find(request.base_model)
    if gpu_gb is None or entry is None or request.method not in METHODS:
        return None
    values = {**asdict(Hyperparameters()), **hyperparameters}
    estimate = catalog.estimate_for_method(
        entry, request.method, values["max_seq_length"], -(-values["batch_size"] // gpus), adapter=values["adapter"],
        reference_free=values["reference_free"])
    return None if catalog.fits(estimate, gpu_gb) else {**estimate.breakdown(), "gpu_gb": gpu_gb}


def request_cancel(job: Job) -> Job:
    """Ask for the job to stop: a queued one is cancelled at once, a started one once its backend stops."""
    if job.status in states.TERMINAL:
        raise Conflict(f"The job already {job.status}.", details={"status": job.status})
    if job.cancel_requested_at is None:
        job.cancel_requested_at = utcnow()
        Job.update(cancel_requested_at=job.cancel_requested_at).where(Job.id == job.id).execute()
        add_event(job, "log", "cancel requested")
    if job.status == states.QUEUED and job.stage == states.PREPARE:
        move(job, states.CANCELLED, "cancelled before it started")
    return job


def list_jobs(owner: User, status: str | None, request: PageRequest, count_limit: int, *,
              name_contains: str = "") -> Page:
    """The owner's jobs, newest first (by keyset on the id), optionally of one status and with a name containing
    a text; counted up to count_limit."""
    query = Job.select().where(Job.owner == owner.id)
    if name_contains:
        query = query.where(Job.name.contains(name_contains))
    if status:
        if status not in states.ALL:
            raise ValidationFailed(f"status must be one of {', '.join(states.ALL)}.", details={"field": "status"})
        query = query.where(Job.status == status)
    return paginate(query, Job.id, request, count_limit)
