"""The whole dialect: the blueprint with every resource module's routes registered on it."""
from app.openai_api import files, jobs, models, openapi  # noqa: F401  (each registers its routes on bp)
from app.openai_api.blueprint import bp

__all__ = ["bp"]
