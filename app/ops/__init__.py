"""Operations endpoints: health checks for load balancers, humans and monitors."""
from flask import Blueprint

bp = Blueprint("ops", __name__, url_prefix="/api/v1")

from app.ops import routes  # noqa: E402,F401  (registers the routes on bp)
