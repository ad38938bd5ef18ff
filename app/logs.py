"""Logging configuration: one readable line per record on stderr."""
from __future__ import annotations

import logging

from app.settings import Settings

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(settings: Settings) -> None:
    """Send the Studio's records to stderr at the configured level."""
    root = logging.getLogger()
    if not any(getattr(handler, "_studio", False) for handler in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(FORMAT))
        handler._studio = True
        root.addHandler(handler)
    root.setLevel(settings.log_level)
