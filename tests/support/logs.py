"""Read the JSON log lines the Studio's processes (and nginx) write."""
from __future__ import annotations

import json
from pathlib import Path

import pytest


def json_lines(path: Path) -> list[dict]:
    """Every line of a log file, each parsed as JSON (fails the test on any other line)."""
    parsed = []
    for line in path.read_text().splitlines():
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON log line: {line!r}")
    return parsed
