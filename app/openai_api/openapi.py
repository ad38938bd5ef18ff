"""Serves the dialect's OpenAPI document at /v1/openapi.json (public, like the Studio API's own)."""
from __future__ import annotations

from pathlib import Path

from app.api.openapi import versioned_document
from app.openai_api.blueprint import bp

OPENAPI_PATH = Path(__file__).with_name("openapi.json")


@bp.get("/openapi.json")
def openapi():
    """The dialect's OpenAPI document, with the running version."""
    return versioned_document(OPENAPI_PATH)
