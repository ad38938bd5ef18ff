"""The OpenAPI document of the API."""
from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

from flask import current_app, jsonify

from app.api.blueprint import bp

OPENAPI_PATH = Path(__file__).with_name("openapi.json")


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI document of this API, with the running version."""
    return versioned_document(OPENAPI_PATH)


def versioned_document(path: Path):
    """An OpenAPI document from its file (read once per process), with the running version, as the answer."""
    document = copy.deepcopy(_read(path))
    document["info"]["version"] = current_app.config["VERSION"]
    return jsonify(document)


@functools.cache
def _read(path: Path) -> dict:
    """The parsed document; it changes only with a deploy, so each process reads it once."""
    return json.loads(path.read_text())
