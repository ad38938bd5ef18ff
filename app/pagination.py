"""The one pagination helper: page/per_page from the query string, a page of a peewee query."""
from __future__ import annotations

from dataclasses import dataclass

from app.errors import ValidationFailed

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
# Far beyond any real list, yet small enough that the row offset fits PostgreSQL's bigint.
MAX_PAGE = 1_000_000


@dataclass(frozen=True)
class Page:
    """One page of results and where it sits in the whole."""

    items: list
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        """How many pages there are (at least one)."""
        return max(1, -(-self.total // self.per_page))

    @property
    def has_next(self) -> bool:
        """Whether another page follows."""
        return self.page < self.pages

    def meta(self) -> dict:
        """The page's position, as the API reports it."""
        return {"page": self.page, "per_page": self.per_page, "total": self.total, "pages": self.pages}


def page_args(args) -> tuple[int, int]:
    """page and per_page from a mapping of query arguments; ValidationFailed names the bad one."""
    return int_arg(args, "page", 1, maximum=MAX_PAGE), int_arg(args, "per_page", DEFAULT_PER_PAGE, maximum=MAX_PER_PAGE)


def int_arg(args, name: str, default: int, minimum: int = 1, maximum: int | None = None) -> int:
    """One integer query argument within [minimum, maximum]; ValidationFailed names it otherwise."""
    raw = args.get(name)
    if raw in (None, ""):
        return default
    # isdigit() alone also accepts digits such as "²" that int() refuses.
    value = int(raw) if str(raw).isascii() and str(raw).isdigit() else None
    if value is None or value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"of at least {minimum}"
        raise ValidationFailed(f"{name} must be an integer {bounds}.", details={"field": name, "value": raw})
    return value


def paginate(query, page: int, per_page: int) -> Page:
    """The requested page of query, which must already be ordered."""
    total = query.count()
    items = list(query.paginate(page, per_page))
    return Page(items=items, page=page, per_page=per_page, total=total)
