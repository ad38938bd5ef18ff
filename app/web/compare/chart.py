"""The compare page's chart: every job's training and validation loss overlaid in one server-drawn SVG."""
from __future__ import annotations

from dataclasses import dataclass, field

from app.web.jobs.chart import PlotArea, Tick, nice_ticks


@dataclass
class Series:
    """One job's curves: its label, (step, loss) and (step, validation loss) points."""

    label: str
    train: list[tuple[int, float]]
    evaluation: list[tuple[int, float]]


@dataclass
class CompareChart(PlotArea):
    """Several jobs' loss curves on shared axes."""

    series: list[Series]
    width: int = 720
    height: int = 300
    left: int = 56
    right: int = 16
    top: int = 14
    bottom: int = 36
    _y_range: tuple[float, float] = field(init=False)
    _x_max: int = field(init=False)

    def __post_init__(self):
        points = [p for s in self.series for p in s.train + s.evaluation]
        values = [v for _, v in points]
        low, high = (min(values), max(values)) if values else (0.0, 1.0)
        pad = (high - low) * 0.08 or 0.1
        self._y_range = (max(0.0, low - pad), high + pad)
        self._x_max = max([1, *(step for step, _ in points)])

    @property
    def empty(self) -> bool:
        """Whether no job has reported a point."""
        return not any(s.train or s.evaluation for s in self.series)

    @property
    def y_ticks(self) -> list[Tick]:
        """Loss gridlines."""
        low, high = self._y_range
        return [Tick(self.y(v), f"{v:.3g}") for v in nice_ticks(low, high, 4)]

    @property
    def x_ticks(self) -> list[Tick]:
        """Step gridlines (whole steps)."""
        return [Tick(self.x(v), f"{int(v)}") for v in nice_ticks(0, self._x_max, 5) if v == int(v)]
