"""The JSON API under /api/v1, authenticated by bearer tokens."""
from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from app.api import auth, datasets, jobs, models, routes  # noqa: E402,F401  (registers hooks and routes on bp)
