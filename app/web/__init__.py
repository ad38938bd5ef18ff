"""The web pages of the Studio (Jinja + htmx)."""
from flask import Blueprint

bp = Blueprint("web", __name__)

from app.web import routes  # noqa: E402,F401  (registers the routes on bp)
