"""The one pagination helper: a page of a peewee query by keyset (rows before or after an id) or by number,
counted only up to a limit, from the query string's cursor/before/after/page/per_page."""
from __future__ import annotations

from dataclasses import dataclass

from peewee import SQL

from app.errors import ValidationFailed

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
# Far beyond any real list, yet small enough that the row offset fits PostgreSQL's bigint.
MAX_PAGE = 1_000_000
# Cursors are row ids: at most 18 digits, within PostgreSQL's bigint.
MAX_ID = 10 ** 18 - 1


@dataclass(frozen=True)
class PageRequest:
    """Which page a list is asked for: numbered (page=, OFFSET) or by keyset (rows before or after a row's id)."""

    per_page: int = DEFAULT_PER_PAGE
    page: int | None = None          # a numbered page: OFFSET (the API's older parameter, kept working)
    before: int | None = None        # rows older than this id (the next page; the API's cursor)
    after: int | None = None         # rows newer than this id (the previous page); 0: the oldest page


@dataclass(frozen=True)
class Page:
    """One page of results, where it sits, and the cursors of its neighbours."""

    items: list
    per_page: int
    total: int
    # Past COUNT_LIMIT rows the count stops: `total` is then a lower bound, and pages say "more than".
    total_exact: bool = True
    page: int | None = None
    has_previous: bool = False
    has_next: bool = False
    previous_cursor: int | None = None   # `after` of the newer page
    next_cursor: int | None = None       # `before` of the older page

    @property
    def pages(self) -> int:
        """How many pages there are (at least one), as far as the count goes."""
        return max(1, -(-self.total // self.per_page))

    def meta(self) -> dict:
        """The page's position, as the API reports it."""
        meta = {"per_page": self.per_page, "total": self.total, "total_exact": self.total_exact,
                "next_cursor": str(self.next_cursor) if self.has_next and self.next_cursor else None}
        if self.page is not None:
            meta.update(page=self.page, pages=self.pages)
        return meta


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


def page_request(args, numbered: bool = False) -> PageRequest:
    """The page a query string asks for: cursor/before (older rows), after (newer rows) or page, and per_page;
    numbered: page 1 when it names none (the API's lists keep their page meta)."""
    per_page = int_arg(args, "per_page", DEFAULT_PER_PAGE, maximum=MAX_PER_PAGE)
    before = int_arg(args, "cursor", 0, maximum=MAX_ID) or int_arg(args, "before", 0, maximum=MAX_ID) or None
    after = int_arg(args, "after", 0, minimum=0, maximum=MAX_ID) if args.get("after") not in (None, "") else None
    page = int_arg(args, "page", 1, maximum=MAX_PAGE) if numbered or args.get("page") not in (None, "") else None
    if before is not None or after is not None:
        page = None  # a cursor wins over a page number
    return PageRequest(per_page, page, before, after)


def paginate(query, key, request: PageRequest, count_limit: int) -> Page:
    """The requested page of query (unordered: it is ordered by key, newest first), counted up to count_limit."""
    total, exact = bounded_count(query, count_limit)
    if request.page is not None:
        items = list(query.order_by(key.desc()).paginate(request.page, request.per_page))
        return Page(items, request.per_page, total, exact, request.page, request.page > 1,
                    request.page * request.per_page < total, None, items[-1].id if items else None)
    if request.after is not None:
        rows = list(query.where(key > request.after).order_by(key.asc()).limit(request.per_page + 1))
        items = rows[:request.per_page][::-1]
        has_previous = len(rows) > request.per_page
        has_next = bool(items) and _exists(query, key < items[-1].id, key.desc())
    else:
        older = query.where(key < request.before) if request.before is not None else query
        rows = list(older.order_by(key.desc()).limit(request.per_page + 1))
        items = rows[:request.per_page]
        has_previous = bool(items) and request.before is not None and _exists(query, key > items[0].id, key.asc())
        has_next = len(rows) > request.per_page
    return Page(items, request.per_page, total, exact, None, has_previous, has_next,
                items[0].id if items else None, items[-1].id if items else None)


def numbered_page(query, page: int, per_page: int) -> Page:
    """Page `page` of query, which must already be ordered, with its exact count (short lists: users)."""
    total = query.count()
    items = list(query.paginate(page, per_page))
    return Page(items, per_page, total, True, page, page > 1, page * per_page < total)


def bounded_count(query, limit: int) -> tuple[int, bool]:
    """How many rows query has, reading at most limit + 1 of them: (count, exact), a lower bound when not."""
    counted = query.select(SQL("1")).limit(limit + 1).count()
    return (counted, True) if counted <= limit else (limit, False)


def _exists(query, condition, nearest_first) -> bool:
    """Whether query has a row meeting condition: one index probe for the nearest such row. (An EXISTS lets
    PostgreSQL scan the table from its start, guessing a match comes soon: for the newest rows of a user with
    many, that read most of the table.)"""
    return query.where(condition).select(SQL("1")).order_by(nearest_first).limit(1).scalar() is not None
