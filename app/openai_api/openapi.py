"""Serves the dialect's OpenAPI document at /v1/openapi.json (public, like the Studio API's own)."""
from __future__ import annotations

import json
from pathlib import Path

from flask import current_app, jsonify

from app.openai_api.blueprint import bp

OPENAPI_PATH = Path(__file__).with_name("openapi.json")


@bp.get("/openapi.json")
def openapi():
    """The dialect's OpenAPI document, with the running version."""
    document = json.loads(OPENAPI_PATH.read_text())
    document["info"]["version"] = current_app.config["VERSION"]
    return jsonify(document)
