"""The app's JSON provider: bodies with NaN, Infinity or numbers too large for a float are refused (422)."""
from __future__ import annotations

import math

from flask.json.provider import DefaultJSONProvider

from app.errors import ValidationFailed


class _NonFinite:
    """Stands where the parser met a non-finite number, so its place can be named."""

    def __init__(self, text: str):
        """Remember the number as written."""
        self.text = text


class FiniteJSONProvider(DefaultJSONProvider):
    """Python's json accepts NaN and Infinity (and turns 1e999 into inf), which no JSON column or check expects.

    Every request body goes through here (request.get_json), so every route refuses them before it runs.
    """

    def loads(self, s, **kwargs):
        """json.loads, raising ValidationFailed naming the first field that holds a non-finite number."""
        found: list[str] = []

        def non_finite(text: str) -> _NonFinite:
            """Note a non-finite number and mark its place."""
            found.append(text)
            return _NonFinite(text)

        def number(text: str):
            """A float, unless it overflows to infinity."""
            value = float(text)
            return value if math.isfinite(value) else non_finite(text)

        kwargs.setdefault("parse_constant", non_finite)
        kwargs.setdefault("parse_float", number)
        value = super().loads(s, **kwargs)
        if found:
            raise ValidationFailed("Numbers must be finite: NaN and Infinity are not JSON.",
                                   details={"field": non_finite_path(value) or "body"})
        return value


def non_finite_path(value, path: str = "") -> str | None:
    """Where the first non-finite number sits in parsed JSON, as a.b[2]; None when nowhere."""
    if isinstance(value, _NonFinite):
        return path
    if isinstance(value, dict):
        children = ((f"{path}.{key}" if path else str(key), item) for key, item in value.items())
    elif isinstance(value, list):
        children = ((f"{path}[{index}]", item) for index, item in enumerate(value))
    else:
        return None
    for child_path, item in children:
        found = non_finite_path(item, child_path)
        if found is not None:
            return found
    return None
