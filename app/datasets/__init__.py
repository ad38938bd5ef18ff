"""Datasets: upload, validation, statistics and preview — the pages live in this blueprint."""
from flask import Blueprint

bp = Blueprint("datasets", __name__, url_prefix="/datasets")

from app.datasets import routes  # noqa: E402,F401  (registers the routes on bp)
