"""The whole API: the blueprint with its token check and every resource module's routes registered on it."""
from app.api import admin, auth, datasets, jobs, me, models, openapi, webhooks  # noqa: F401  (each registers its routes on bp)
from app.api.blueprint import bp

__all__ = ["bp"]
