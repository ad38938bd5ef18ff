"""Accounts: login and logout pages, API tokens in the settings page."""
from flask import Blueprint

bp = Blueprint("auth", __name__)

from app.auth import routes  # noqa: E402,F401  (registers the routes on bp)
