"""What htmx adds to the requests of the page tests."""
from __future__ import annotations

HTMX = {"HX-Request": "true"}


def htmx(target: str | None = None) -> dict:
    """The headers htmx sends, aimed at the element with id target."""
    return {**HTMX, **({"HX-Target": target} if target else {})}
