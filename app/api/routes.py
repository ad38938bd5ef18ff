"""The whole API: the blueprint with its token check and every resource module's routes registered on it."""
# Each module imported registers its routes on bp.
from app.api import admin, auth, datasets, jobs, me, models, openapi, playground, results, webhooks  # noqa: F401
from app.api.blueprint import bp

__all__ = ["bp"]
