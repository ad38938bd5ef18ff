"""Values as pages show them: durations, parameter counts, dates and times; registered as Jinja filters."""
from __future__ import annotations

import datetime

DATETIME_FORMAT = "%Y-%m-%d %H:%M"


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


def format_datetime(moment: datetime.datetime | None, with_zone: bool = True) -> str:
    """A stored (naive UTC) timestamp for people: 2026-12-01 21:04 UTC; — when there is none."""
    if moment is None:
        return "—"
    return moment.strftime(DATETIME_FORMAT) + (" UTC" if with_zone else "")


def format_time(moment: datetime.datetime) -> str:
    """The time of day of a timestamp, to the second (log lines)."""
    return moment.strftime("%H:%M:%S")


def init_app(app) -> None:
    """Make the formats available to templates as filters."""
    for name, function in {"duration": format_duration, "parameters": format_parameters,
                           "datetime": format_datetime, "time": format_time}.items():
        app.add_template_filter(function, name)
