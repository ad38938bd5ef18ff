"""Values as pages show them, in the request's language: durations, numbers, sizes, dates; Jinja filters."""
from __future__ import annotations

import datetime
import functools

from babel import Locale
from babel.dates import format_date
from babel.dates import format_time as babel_time
from babel.numbers import format_decimal, format_percent
from flask_babel import get_locale

ENGLISH = Locale("en")
SIZE_UNITS = ("kB", "MB", "GB", "TB")


def locale() -> Locale:
    """The request's language; English outside a request (the CLI, tests of the formats themselves)."""
    try:
        return get_locale() or ENGLISH
    except RuntimeError:  # no application or request context
        return ENGLISH


def format_number(value, digits: int | None = None) -> str:
    """A number with the language's separators: 12,345 / 12.345; digits fixes the decimals (0.1234 / 0,1234)."""
    if value is None:
        return "—"
    return _formatted_number(value or 0, digits, locale())  # or 0: -0.0 is shown as 0 (and is a key equal to 0)


@functools.lru_cache(maxsize=4096)
def _formatted_number(value, digits: int | None, language: Locale) -> str:
    """format_number's text (babel's formatting costs more than a chart's drawing; a page shows the same ticks,
    steps and values poll after poll)."""
    pattern = None if digits is None else "#,##0." + "0" * digits if digits else "#,##0"
    return format_decimal(value, format=pattern, locale=language)


def format_percentage(percent, digits: int = 0) -> str:
    """A percentage given on a 0–100 scale, rounded to digits decimals: 45% / 45 %, 45.3% / 45,3 %."""
    if percent is None:
        return "—"
    pattern = locale().percent_formats[None].pattern  # "#,##0%", "#,##0 %": the language's spacing, these decimals
    if digits:
        pattern = pattern.replace("0", "0." + "0" * digits, 1)
    return format_percent(percent / 100, format=pattern, locale=locale())


def format_size(size_bytes) -> str:
    """A size in decimal units with the language's separators: 1.5 MB / 1,5 MB."""
    if size_bytes is None:
        return "—"
    if size_bytes < 1000:
        return f"{format_decimal(size_bytes, locale=locale())} B"
    value = float(size_bytes)
    for unit in SIZE_UNITS:
        value /= 1000
        if value < 1000 or unit == SIZE_UNITS[-1]:
            return f"{format_decimal(value, format='#,##0.0', locale=locale())} {unit}"
    raise AssertionError("unreachable: the last unit always returns")


def format_duration(seconds: float | None) -> str:
    """A duration for people: 45 s, 3 min 05 s, 2 h 04 min (unit symbols, the same in every language)."""
    if seconds is None:
        return "—"
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def format_parameters(count: int) -> str:
    """A parameter count for people: 108 K, 494 M, 1.2 B (1,2 B in Spanish)."""
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= size:
            value = count / size
            shown = format_number(value, 1) if value < 10 and unit == "B" else format_number(round(value))
            return f"{shown} {unit}"
    return str(count)


def format_datetime(moment: datetime.datetime | None, with_zone: bool = True) -> str:
    """A stored (naive UTC) timestamp for people: Dec 1, 2026 21:04 UTC / 1 dic 2026 21:04 UTC; — when none."""
    if moment is None:
        return "—"
    shown = f"{format_date(moment, 'medium', locale=locale())} {babel_time(moment, 'HH:mm', locale=locale())}"
    return shown + (" UTC" if with_zone else "")


def format_iso_datetime(text: str | None) -> str:
    """An ISO 8601 timestamp (as backends report them) like format_datetime shows stored ones."""
    if not text:
        return "—"
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.UTC).replace(tzinfo=None)
    return format_datetime(moment)


def format_time(moment: datetime.datetime) -> str:
    """The time of day of a timestamp, to the second (log lines)."""
    return moment.strftime("%H:%M:%S")


def init_app(app) -> None:
    """Make the formats available to templates as filters."""
    filters = {"duration": format_duration, "parameters": format_parameters, "datetime": format_datetime,
               "isodatetime": format_iso_datetime, "time": format_time, "number": format_number,
               "percentage": format_percentage, "filesize": format_size}
    for name, function in filters.items():
        app.add_template_filter(function, name)
