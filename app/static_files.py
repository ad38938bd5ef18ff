"""Static file URLs carry a fingerprint of the file's content, so browsers and nginx may cache them for a year."""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from flask import Flask


def init_app(app: Flask) -> None:
    """Add ?v=<fingerprint> to every url_for('static', …)."""
    folder = Path(app.static_folder)

    @app.url_defaults
    def _fingerprint(endpoint: str, values: dict) -> None:
        if endpoint == "static" and "filename" in values and "v" not in values:
            values["v"] = fingerprint(folder / values["filename"])


@lru_cache(maxsize=256)
def fingerprint(path: Path) -> str:
    """The first 12 hex digits of the file's SHA-256 ('missing' for a file that is not there)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    except OSError:
        return "missing"
