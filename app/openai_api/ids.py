"""Public ids in OpenAI's style (`ftjob-12`, `file-7`, `ftevent-99`) and back to row ids; no Flask here."""
from __future__ import annotations

from app.errors import NotFound

JOB, FILE, EVENT, CHECKPOINT = "ftjob", "file", "ftevent", "ftckpt"


def public_id(kind: str, row_id: int) -> str:
    """The id a client sees for the row of that kind."""
    return f"{kind}-{row_id}"


def row_id(kind: str, value: str | None, what: str) -> int:
    """The row id in a public id of that kind; NotFound (naming what) when it is not one."""
    prefix, _, number = (value or "").partition("-")
    if prefix != kind or not number.isascii() or not number.isdigit() or len(number) > 18:
        raise NotFound(f"No such {what}: {value!r}.", details={"field": what})
    return int(number)


def cursor(kind: str, value: str | None, what: str) -> int | None:
    """The row id an `after` argument points at, None when none was given."""
    return None if value in (None, "") else row_id(kind, value, what)
