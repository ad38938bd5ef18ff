"""OpenAI's cursor lists: newest first, `after` the last id seen, `limit`, `{"object": "list", "data", "has_more"}`."""
from __future__ import annotations

from collections.abc import Callable, Iterable

from app.pagination import int_arg

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def limit_arg(args, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    """The `limit` query argument, 1 to maximum."""
    return int_arg(args, "limit", default, maximum=maximum)


def take(rows: Iterable, limit: int, keep: Callable = lambda row: True) -> tuple[list, bool]:
    """The first limit rows that keep() accepts, and whether another one follows."""
    kept = []
    for row in rows:
        if keep(row):
            if len(kept) == limit:
                return kept, True
            kept.append(row)
    return kept, False


def list_body(data: list[dict], has_more: bool, **extra) -> dict:
    """A list object as OpenAI's client pages it (by the last item's id)."""
    return {"object": "list", "data": data, "has_more": has_more,
            "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None, **extra}
