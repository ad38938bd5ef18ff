"""What the job pages show, gathered in a fixed number of queries: progress, the loss chart, the log tail."""
from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, field

from peewee import fn

from app import catalog
from app.jobs import states
from app.models import Artifact, Dataset, Job, JobEvent, User, utcnow

# The chart keeps at most this many points per series, however long the run: a poll stays cheap.
CHART_POINTS = 200
LOG_TAIL_LINES = 40
RUNNING_ON_DASHBOARD = 10
METHOD_LABELS = {"lora": "LoRA", "qlora": "QLoRA", "full": "Full"}


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


def progress_of(job: Job, now: datetime.datetime | None = None) -> Progress:
    """The job's progress: percent, step and epoch, elapsed time and the ETA while it runs."""
    now = now or utcnow()
    active = job.status in states.ACTIVE
    percent = min(100.0, round(100 * job.step / job.total_steps, 1)) if job.total_steps else None
    if job.status == states.SUCCEEDED:
        percent = 100.0
    elapsed = ((job.finished_at or now) - job.started_at).total_seconds() if job.started_at else None
    metrics = job.metrics or {}
    eta = metrics.get("eta_seconds") if job.status == states.RUNNING else None
    return Progress(job.status, active, active and job.cancel_requested_at is not None, job.step, job.total_steps,
                    job.epoch, percent, elapsed, eta, metrics)


def format_duration(seconds: float | None) -> str:
    """A duration for people: 45 s, 3 min 05 s, 2 h 04 min."""
    if seconds is None:
        return "—"
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def format_parameters(count: int) -> str:
    """A parameter count for people: 108 K, 494 M, 1.2 B."""
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= size:
            value = count / size
            return f"{value:.1f} {unit}" if value < 10 and unit == "B" else f"{value:.0f} {unit}"
    return str(count)


# -- the loss chart -----------------------------------------------------------------------------------------------


def loss_points(job: Job, limit: int = CHART_POINTS) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(step, loss) and (step, eval loss) points of the job, each series thinned to about `limit` points.

    One query whatever the number of events: a window numbers each series' points, and only the first point of
    each of `limit` equal slices (and the last point) leaves the database.
    """
    series = JobEvent.data["type"].as_text()
    ranked = (JobEvent.select(JobEvent.id, JobEvent.data, series.alias("series"),
                              fn.ROW_NUMBER().over(partition_by=[series], order_by=[JobEvent.id]).alias("n"),
                              fn.COUNT(JobEvent.id).over(partition_by=[series]).alias("total"))
              .where((JobEvent.job == job.id) & (JobEvent.kind == "metric"))
              .alias("ranked"))
    n, total = ranked.c.n, ranked.c.total
    # Integer division: the row opens a new slice when n * limit / total steps up.
    opens_slice = (n * limit) / total != ((n - 1) * limit) / total
    rows = (JobEvent.select(ranked.c.data, ranked.c.series).from_(ranked)
            .where(opens_slice | (n == total)).order_by(ranked.c.id).tuples())
    train, evaluation = [], []
    for data, kind in rows:
        data = JobEvent.data.python_value(data) if isinstance(data, str) else data
        point = _point(data, "eval_loss" if kind == "eval" else "loss")
        if point:
            (evaluation if kind == "eval" else train).append(point)
    return train, evaluation


def _point(data: dict | None, key: str) -> tuple[int, float] | None:
    """(step, value) from a metric event's data, when both are there and finite."""
    step, value = (data or {}).get("step"), (data or {}).get(key)
    if isinstance(step, int) and isinstance(value, (int, float)) and math.isfinite(value):
        return step, float(value)
    return None


@dataclass(frozen=True)
class Tick:
    """One labelled position on an axis, in chart coordinates."""

    at: float
    label: str


@dataclass
class LossChart:
    """An SVG line chart of training and evaluation loss against step, computed on the server."""

    train: list[tuple[int, float]]
    evaluation: list[tuple[int, float]]
    total_steps: int | None = None
    width: int = 640
    height: int = 260
    left: int = 56
    right: int = 16
    top: int = 14
    bottom: int = 36
    _y_range: tuple[float, float] = field(init=False)
    _x_max: int = field(init=False)

    def __post_init__(self):
        values = [v for _, v in self.train + self.evaluation]
        low, high = (min(values), max(values)) if values else (0.0, 1.0)
        pad = (high - low) * 0.08 or max(abs(high) * 0.1, 0.1)
        self._y_range = (max(0.0, low - pad) if low >= 0 else low - pad, high + pad)
        steps = [s for s, _ in self.train + self.evaluation]
        self._x_max = max([self.total_steps or 0, *steps, 1])

    @property
    def empty(self) -> bool:
        """Whether there is nothing to draw yet."""
        return not self.train and not self.evaluation

    @property
    def plot_right(self) -> int:
        """The right edge of the plotting area."""
        return self.width - self.right

    @property
    def plot_bottom(self) -> int:
        """The bottom edge of the plotting area."""
        return self.height - self.bottom

    def x(self, step: float) -> float:
        """The horizontal position of a step."""
        return round(self.left + (self.plot_right - self.left) * step / self._x_max, 1)

    def y(self, value: float) -> float:
        """The vertical position of a loss value."""
        low, high = self._y_range
        return round(self.plot_bottom - (self.plot_bottom - self.top) * (value - low) / (high - low), 1)

    def path(self, points: list[tuple[int, float]]) -> str:
        """The `points` attribute of a polyline through the points."""
        return " ".join(f"{self.x(step)},{self.y(value)}" for step, value in points)

    @property
    def train_path(self) -> str:
        """The training-loss polyline."""
        return self.path(self.train)

    @property
    def eval_path(self) -> str:
        """The evaluation-loss polyline."""
        return self.path(self.evaluation)

    @property
    def train_dot(self) -> tuple[float, float] | None:
        """A marker on the newest training point."""
        return (self.x(self.train[-1][0]), self.y(self.train[-1][1])) if self.train else None

    @property
    def eval_dots(self) -> list[tuple[float, float]]:
        """A marker per evaluation (they are few, and a single one draws no line)."""
        return [(self.x(step), self.y(value)) for step, value in self.evaluation]

    @property
    def y_ticks(self) -> list[Tick]:
        """Loss gridlines with labels."""
        low, high = self._y_range
        return [Tick(self.y(value), f"{value:.3g}") for value in nice_ticks(low, high, 4)]

    @property
    def x_ticks(self) -> list[Tick]:
        """Step gridlines with labels (whole steps only)."""
        return [Tick(self.x(value), f"{int(value)}") for value in nice_ticks(0, self._x_max, 5) if value == int(value)]

    @property
    def summary(self) -> str:
        """The chart in words, for screen readers."""
        parts = [_describe_series("Training loss", self.train), _describe_series("evaluation loss", self.evaluation)]
        return "; ".join(part for part in parts if part) + "."


def _describe_series(name: str, points: list[tuple[int, float]]) -> str:
    """First and last point of a series, in words."""
    if not points:
        return ""
    (first_step, first), (last_step, last) = points[0], points[-1]
    if len(points) == 1:
        return f"{name} {first:.4f} at step {first_step}"
    return f"{name} from {first:.4f} at step {first_step} to {last:.4f} at step {last_step}"


def nice_ticks(low: float, high: float, count: int) -> list[float]:
    """About `count` round values between low and high (1, 2 or 5 times a power of ten apart)."""
    if high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    spacing = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / spacing) * spacing
    return [round(first + i * spacing, 10) for i in range(int((high - first) / spacing + 1e-9) + 1)]


# -- what a job page shows ----------------------------------------------------------------------------------------


def log_tail(job: Job, limit: int = LOG_TAIL_LINES) -> list[JobEvent]:
    """The job's last log lines and status changes, oldest first."""
    rows = (JobEvent.select(JobEvent.kind, JobEvent.message, JobEvent.created_at)
            .where((JobEvent.job == job.id) & (JobEvent.kind.in_(("log", "status"))))
            .order_by(JobEvent.id.desc()).limit(limit))
    return list(reversed(list(rows)))


def artifacts_of(job: Job) -> list[Artifact]:
    """The files the job produced, by name."""
    return list(Artifact.select().where(Artifact.job == job.id).order_by(Artifact.name))


def job_panel(job: Job) -> dict:
    """Everything the live part of a job page shows: three queries, however many events the job has."""
    train, evaluation = loss_points(job)
    return {"progress": progress_of(job), "chart": LossChart(train, evaluation, job.total_steps),
            "log": log_tail(job), "artifacts": artifacts_of(job)}


def running_jobs(owner: User, limit: int = RUNNING_ON_DASHBOARD) -> list[Job]:
    """The owner's queued, preparing and running jobs, newest first."""
    return list(Job.select().where((Job.owner == owner.id) & Job.status.in_(states.ACTIVE))
                .order_by(Job.created_at.desc(), Job.id.desc()).limit(limit))


def ready_datasets(owner: User) -> list[Dataset]:
    """The owner's datasets that can be trained on, newest first."""
    return list(Dataset.select(Dataset.id, Dataset.name, Dataset.format, Dataset.example_count)
                .where((Dataset.owner == owner.id) & (Dataset.status == "ready"))
                .order_by(Dataset.created_at.desc(), Dataset.id.desc()))


# -- the memory estimate of the new-job form ----------------------------------------------------------------------


@dataclass(frozen=True)
class EstimateView:
    """The memory estimate for the form's current choices, or why there is none."""

    entry: catalog.ModelEntry | None
    estimate: catalog.MemoryEstimate | None
    gpu_gb: int
    backend: str
    problem: str | None = None

    @property
    def fits(self) -> bool:
        """Whether the run fits the GPU."""
        return self.estimate is not None and catalog.fits(self.estimate, self.gpu_gb)

    @property
    def blocks_submission(self) -> bool:
        """Whether the Studio refuses the job unless the user overrides (Kaggle's GPU has a hard limit)."""
        return self.estimate is not None and not self.fits and self.backend == "kaggle"

    @property
    def advice(self) -> str:
        """Why it does not fit and what to change."""
        if self.estimate is None or self.fits:
            return ""
        parts = self.estimate.breakdown()
        biggest = max(("weights_gb", "activations_gb", "trainable_gb"), key=lambda part: parts[part])
        return {
            "weights_gb": "The model's weights alone are too large: use QLoRA (4-bit weights) or a smaller model.",
            "activations_gb": "Activations dominate: lower the batch size (raise gradient accumulation to keep the "
                              "effective batch) or shorten the sequence length.",
            "trainable_gb": "Full fine-tuning keeps optimizer state for every weight: use LoRA or QLoRA.",
        }[biggest]


def estimate_for(base_model: str, method: str, max_seq_length, batch_size, lora_r, backend: str,
                 gradient_checkpointing: bool = True) -> EstimateView:
    """The memory estimate of a run with these (form) values; a problem instead when they cannot be estimated."""
    entry = _catalog_entry(base_model)
    if entry is None:
        return EstimateView(None, None, catalog.T4_GB, backend,
                            problem="No estimate for models outside the catalog; check the model card.")
    try:
        numbers = [int(value) for value in (max_seq_length, batch_size, lora_r)]
    except (TypeError, ValueError):
        return EstimateView(entry, None, catalog.T4_GB, backend,
                            problem="Enter whole numbers for sequence length, batch size and LoRA rank.")
    problem = _estimate_problem(entry, method, numbers)
    if problem:
        return EstimateView(entry, None, catalog.T4_GB, backend, problem=problem)
    estimate = catalog.estimate_memory(entry, method, numbers[0], numbers[1], gradient_checkpointing,
                                       lora_r=numbers[2])
    return EstimateView(entry, estimate, catalog.T4_GB, backend)


def _estimate_problem(entry: catalog.ModelEntry, method: str, numbers: list[int]) -> str | None:
    """Why these values cannot be estimated, if they cannot."""
    if method not in catalog.METHODS:
        return "Choose a method."
    if min(numbers) < 1:
        return "Sequence length, batch size and LoRA rank must each be at least 1."
    if numbers[0] > entry.context_length:
        return f"The model reads at most {entry.context_length} tokens: shorten the sequence length."
    return None


def _catalog_entry(model_id: str) -> catalog.ModelEntry | None:
    """The catalog's entry for an id, or None."""
    try:
        return catalog.get_entry((model_id or "").strip())
    except catalog.UnknownModel:
        return None
