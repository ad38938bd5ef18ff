"""What the job pages show, gathered in a fixed number of queries: progress, the loss chart, the log tail."""
from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from functools import partial

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app import catalog
from app.db import execute_compiled, model_from_row
from app.jobs import gpu_budget, metric_points, states
from app.jobs.artifacts import list_artifacts
from app.jobs.context import JobContext
from app.models import MAX_ID, Dataset, Job, JobEvent, User, utcnow
from app.web.formatting import format_number
from app.web.jobs.chart import NAMED_WORDS, LossChart
from app.web.live import owned_rows
from trainer.config import PREFERENCE_METHODS

# The chart keeps at most this many points per series, however long the run: a poll stays cheap.
CHART_POINTS = 200
LOG_TAIL_LINES = 40
RUNNING_ON_DASHBOARD = 10


@dataclass(frozen=True)
class Progress:
    """Where a job stands, as the progress widget shows it."""

    status: str
    active: bool
    cancelling: bool
    step: int
    total_steps: int | None
    epoch: float
    percent: float | None
    elapsed_seconds: float | None
    eta_seconds: float | None
    metrics: dict
    session: int | None = None           # which session of a run split across remote sessions (Kaggle's)
    waiting_reason: str | None = None    # why the job waits for its account's slots or quota
    paused: bool = False                 # asked to pause (POST /v1/fine_tuning/jobs/{id}/pause): it waits checkpointed


def progress_of(job: Job, now: datetime.datetime | None = None) -> Progress:
    """The job's progress: percent, step and epoch, elapsed time and the ETA while it runs."""
    now = now or utcnow()
    active = job.status in states.ACTIVE
    percent = min(100.0, round(100 * job.step / job.total_steps, 1)) if job.total_steps else None
    if job.status == states.SUCCEEDED:
        percent = 100.0
    elapsed = ((job.finished_at or now) - job.started_at).total_seconds() if job.started_at else None
    metrics = job.metrics or {}
    paused = job.status == states.RUNNING and job.paused_at is not None
    eta = metrics.get("eta_seconds") if job.status == states.RUNNING and not paused else None
    ref = job.backend_ref or {}
    return Progress(job.status, active, active and job.cancel_requested_at is not None, job.step, job.total_steps,
                    job.epoch, percent, elapsed, eta, metrics, ref.get("session", 1) if ref.get("kernel") else None,
                    ref.get("waiting_reason") if active else None, paused)


# -- the loss chart -----------------------------------------------------------------------------------------------


# The charted series: the metric each kind of event carries under a name (a preference run's rewards too).
SERIES = {"progress": ("loss", "reward_margin", "reward_accuracy"),
          "eval": ("eval_loss", "eval_reward_margin", "eval_reward_accuracy")}


def loss_points(job: Job) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(step, loss) and (step, eval loss) points of the job, each thinned to at most CHART_POINTS (and its last)."""
    series = metric_series(job)
    return series["loss"], series["eval_loss"]


def metric_series(job: Job, limit: int = CHART_POINTS, upto: int = MAX_ID) -> dict[str, list[tuple[int, float]]]:
    """(step, value) points of each charted metric (SERIES) of the job (up to event `upto`), each thinned to at
    most `limit` (and its last point): one query, each series' points one index range (app/jobs/metric_points.py).
    """
    rows = metric_points.thinned(job.id, tuple(SERIES), limit, upto)
    found = {name: [] for names in SERIES.values() for name in names}
    for data, kind in rows:
        # (step, value) of each metric the event carries, when both are there and finite.
        step = data.get("step") if isinstance(data, dict) else None
        if not isinstance(step, int):
            continue
        for name in SERIES.get(kind, ()):
            value = data.get(name)
            if isinstance(value, (int, float)) and math.isfinite(value):
                found[name].append((step, float(value)))
    return found


# -- what a job page shows ----------------------------------------------------------------------------------------


def log_tail(job: Job, limit: int = LOG_TAIL_LINES, after: int = 0, upto: int = MAX_ID) -> list[JobEvent]:
    """The job's last log lines and status changes (those after event `after`, up to `upto`), oldest first."""
    _query, cursor = execute_compiled(_log_tail_query, {JOB_MARK: job.id, AFTER_MARK: after, UPTO_MARK: upto}, limit)
    return [model_from_row(JobEvent, LOG_TAIL_FIELDS, row) for row in reversed(cursor.fetchall())]


# Stand-ins for the values of the compiled log query (no other parameter takes them).
JOB_MARK, AFTER_MARK, UPTO_MARK = -7_501, -7_502, -7_503


LOG_TAIL_FIELDS = (JobEvent.id, JobEvent.kind, JobEvent.message, JobEvent.created_at)


def _log_tail_query(limit: int):
    """log_tail's query, with stand-ins for its values."""
    return (JobEvent.select(*LOG_TAIL_FIELDS)
             .where((JobEvent.job == JOB_MARK) & JobEvent.kind.in_(("log", "status")) & (JobEvent.id > AFTER_MARK)
                    & (JobEvent.id <= UPTO_MARK))
             .order_by(JobEvent.id.desc()).limit(limit))


def job_panel(job: Job) -> dict:
    """Everything the live part of a job page shows, up to the marks live_job read with the job (its cursor):
    three queries, however many events the job has."""
    series = metric_series(job, upto=job.last_point_id or 0)
    return {"progress": progress_of(job), "chart": loss_chart(job, series),
            "reward_charts": reward_charts(job, series), "log": log_tail(job, upto=job.last_event_id),
            "artifacts": list_artifacts(job)}


def loss_chart(job: Job, series: dict) -> LossChart:
    """The loss chart of the job's series (metric_series)."""
    return LossChart(series["loss"], series["eval_loss"], job.total_steps)


def reward_charts(job: Job, series: dict) -> list[LossChart]:
    """A preference run's reward margin and accuracy charts (training and evaluation); none for other runs."""
    if job.method not in PREFERENCE_METHODS:
        return []
    total_steps, named = job.total_steps, (NAMED_WORDS, NAMED_WORDS)
    return [LossChart(series["reward_margin"], series["eval_reward_margin"], total_steps, title=_l("Reward margin"),
                      names=(_l("Training margin"), _l("Evaluation margin")), figure_id="job-reward-margin",
                      words=named),
            LossChart(series["reward_accuracy"], series["eval_reward_accuracy"], total_steps,
                      title=_l("Reward accuracy"), names=(_l("Training accuracy"), _l("Evaluation accuracy")),
                      figure_id="job-reward-accuracy", words=named)]


def running_jobs_of(owner_id: int, limit: int = RUNNING_ON_DASHBOARD, with_owner: bool = False) -> list[Job]:
    """The owner's queued, preparing and running jobs, newest first (with_owner: the owner, if active, joined in
    and loaded with each, for a poll that answers in this one query)."""
    query = Job.select().where(Job.status.in_(states.ACTIVE))
    query = owned_rows(query, Job, owner_id) if with_owner else query.where(Job.owner == owner_id)
    return list(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit))


def ready_datasets(owner: User) -> list[Dataset]:
    """The owner's datasets that can be trained on, newest first."""
    return list(Dataset.select(Dataset.id, Dataset.name, Dataset.format, Dataset.example_count)
                .where((Dataset.owner == owner.id) & (Dataset.status == "ready"))
                .order_by(Dataset.created_at.desc(), Dataset.id.desc()))


# -- the memory estimate of the new-job form ----------------------------------------------------------------------


@dataclass(frozen=True)
class BackendChoice:
    """An enabled backend as the form offers it, with why it cannot take jobs now (nothing when it can)."""

    name: str
    label: str
    problems: list[str]


def backend_choices(ctx: JobContext, owner_id: int) -> list[BackendChoice]:
    """Each enabled backend, in the configured order, with why this owner cannot use it."""
    return [BackendChoice(name, backend.label, backend.configuration_problems(owner_id))
            for name, backend in ctx.enabled_backends().items()]


@dataclass(frozen=True)
class EstimateView:
    """The memory estimate for the form's current choices, or why there is none."""

    entry: catalog.ModelEntry | None
    estimate: catalog.MemoryEstimate | None
    gpu_gb: float
    enforced: bool                     # the backend's GPU has this size for sure (Kaggle's), so a misfit blocks
    problem: str | None = None

    @property
    def fits(self) -> bool:
        """Whether the run fits the GPU."""
        return self.estimate is not None and catalog.fits(self.estimate, self.gpu_gb)

    @property
    def blocks_submission(self) -> bool:
        """Whether the Studio refuses the job unless the user overrides (the backend's GPU has a hard limit)."""
        return self.estimate is not None and not self.fits and self.enforced

    @property
    def advice(self) -> str:
        """Why it does not fit and what to change."""
        if self.estimate is None or self.fits:
            return ""
        parts = self.estimate.breakdown()
        biggest = max(("weights_gb", "activations_gb", "trainable_gb"), key=lambda part: parts[part])
        return str(ADVICE[biggest])


ADVICE = {
    "weights_gb": _l("The model's weights alone are too large: use QLoRA (4-bit weights) or a smaller model."),
    "activations_gb": _l("Activations dominate: lower the batch size (raise gradient accumulation to keep the "
                         "effective batch) or shorten the sequence length."),
    "trainable_gb": _l("Full fine-tuning keeps optimizer state for every weight: use LoRA or QLoRA."),
}


def estimate_for(base_model: str, method: str, max_seq_length, batch_size, lora_r, gpu_gb: float | None,
                 gradient_checkpointing: bool = True, *, adapter: str = "lora",
                 reference_free: bool = False) -> EstimateView:
    """The memory estimate of a run with these (form) values on a GPU of gpu_gb GB (None: unknown, a T4 is
    assumed); a problem instead when they cannot be estimated."""
    entry = catalog.find(base_model)
    view = partial(EstimateView, entry, gpu_gb=gpu_gb or catalog.T4_GB, enforced=gpu_gb is not None)
    if entry is None:
        return view(None, problem=_("No estimate for models outside the catalog; check the model card."))
    try:
        numbers = [int(value) for value in (max_seq_length, batch_size, lora_r)]
    except (TypeError, ValueError):
        return view(None, problem=_("Enter whole numbers for sequence length, batch size and LoRA rank."))
    problem = _estimate_problem(entry, method, numbers)
    if problem:
        return view(None, problem=problem)
    if adapter not in catalog.ADAPTERS:
        return view(None, problem=_("Choose the adapter the preference method trains."))
    return view(catalog.estimate_for_method(entry, method, numbers[0], numbers[1], gradient_checkpointing,
                                            adapter=adapter, reference_free=reference_free, lora_r=numbers[2]))


def _estimate_problem(entry: catalog.ModelEntry, method: str, numbers: list[int]) -> str | None:
    """Why these values cannot be estimated, if they cannot."""
    if method not in catalog.METHODS:
        return _("Choose a method.")
    if min(numbers) < 1:
        return _("Sequence length, batch size and LoRA rank must each be at least 1.")
    if numbers[0] > entry.context_length:
        return _("The model reads at most %(tokens)s tokens: shorten the sequence length.",
                 tokens=format_number(entry.context_length))
    return None


# -- the GPU-time estimate of the new-job form (Kaggle) ------------------------------------------------------------

TIME_FIELDS = ("epochs", "max_steps", "batch_size", "gradient_accumulation_steps", "max_seq_length")


def gpu_time_for(ctx: JobContext, owner_id: int, values: dict) -> dict | None:
    """The form's run on the chosen backend's GPUs against the owner's quota left; None when the backend keeps
    no quota or nothing can be estimated yet."""
    backend = values.get("backend") or ""
    if backend not in ctx.enabled_backends() or not str(values.get("dataset_id") or "").isdigit():
        return None
    dataset = Dataset.get_or_none((Dataset.id == int(values["dataset_id"])) & (Dataset.owner == owner_id))
    numbers = {name: int(values[name]) for name in TIME_FIELDS if str(values.get(name) or "").isdigit()}
    estimate = gpu_budget.estimate_for(values.get("base_model", ""), values.get("method", ""), dataset, numbers,
                                       ctx.backend(backend).gpus)
    return gpu_budget.summary(ctx, owner_id, backend, estimate)
