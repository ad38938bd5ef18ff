"""The charts of a job page: SVG line charts of a training and an evaluation series (loss; a preference run's reward
margin and accuracy), computed on the server."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from flask_babel import lazy_gettext as _l

from app.web.formatting import format_number


@dataclass(frozen=True)
class Tick:
    """One labelled position on an axis, in chart coordinates."""

    at: float
    label: str


class PlotArea:
    """Positions in an SVG chart's plotting area, for a dataclass with width, height, the four margins,
    `_x_max` (the last step) and `_y_range` (the values' low and high)."""

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
        """The vertical position of a value."""
        low, high = self._y_range
        return round(self.plot_bottom - (self.plot_bottom - self.top) * (value - low) / (high - low), 1)

    def path(self, points: list[tuple[int, float]]) -> str:
        """The `points` attribute of a polyline through the points: x and y as x() and y() give them, inlined (a
        chart has hundreds), and rounded by the format (the same text as str(round(…, 1)) in a chart's range,
        at a fifth of the cost)."""
        left, width, x_max = self.left, self.plot_right - self.left, self._x_max
        (low, high), bottom = self._y_range, self.plot_bottom
        height, span = bottom - self.top, high - low
        return " ".join([f"{left + width * step / x_max:.1f},{bottom - height * (value - low) / span:.1f}"
                         for step, value in points])


@dataclass
class LossChart(PlotArea):
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
    title: str = _l("Loss")
    names: tuple[str, str] = (_l("Training loss"), _l("Evaluation loss"))
    figure_id: str = "job-chart"
    words: tuple | None = None  # how the summary tells each series; the loss's words when None
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
        return [Tick(self.y(value), format_number(float(f"{value:.3g}"))) for value in nice_ticks(low, high, 4)]

    @property
    def x_ticks(self) -> list[Tick]:
        """Step gridlines with labels (whole steps only)."""
        return [Tick(self.x(value), format_number(int(value)))
                for value in nice_ticks(0, self._x_max, 5) if value == int(value)]

    @property
    def summary(self) -> str:
        """The chart in words, for screen readers, in the request's language."""
        training, evaluation = self.words or (TRAINING_WORDS, EVALUATION_WORDS)
        parts = [_describe_series(training, self.train, self.names[0]),
                 _describe_series(evaluation, self.evaluation, self.names[1])]
        return "; ".join(part for part in parts if part) + "."


# How a series is told: (its only point, its first and last points), per series.
TRAINING_WORDS = (_l("Training loss %(value)s at step %(step)s"),
                  _l("Training loss from %(first)s at step %(first_step)s to %(last)s at step %(last_step)s"))
EVALUATION_WORDS = (_l("evaluation loss %(value)s at step %(step)s"),
                    _l("evaluation loss from %(first)s at step %(first_step)s to %(last)s at step %(last_step)s"))
# Any other series, told by its name (a preference run's reward margin and accuracy).
NAMED_WORDS = (_l("%(name)s %(value)s at step %(step)s"),
               _l("%(name)s from %(first)s at step %(first_step)s to %(last)s at step %(last_step)s"))


def _describe_series(words: tuple, points: list[tuple[int, float]], name: str = "") -> str:
    """First and last point of a series, in words."""
    if not points:
        return ""
    (first_step, first), (last_step, last) = points[0], points[-1]
    if len(points) == 1:
        return str(words[0]) % {"name": name, "value": format_number(first, 4), "step": format_number(first_step)}
    return str(words[1]) % {"name": name, "first": format_number(first, 4), "first_step": format_number(first_step),
                            "last": format_number(last, 4), "last_step": format_number(last_step)}


def nice_ticks(low: float, high: float, count: int) -> list[float]:
    """About `count` round values between low and high (1, 2 or 5 times a power of ten apart)."""
    if high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    spacing = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / spacing) * spacing
    return [round(first + i * spacing, 10) for i in range(int((high - first) / spacing + 1e-9) + 1)]
