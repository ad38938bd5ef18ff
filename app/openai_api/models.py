"""/v1/models: the catalog's base models and every succeeded job's model."""
from __future__ import annotations

from flask import jsonify

from app.openai_api import objects, queries
from app.openai_api.blueprint import bp, current_user


@bp.get("/models")
def list_models():
    """Base models, then the user's tuned ones (newest first)."""
    tuned = [objects.model_object(objects.fine_tuned_model(job), job.finished_at)
             for job in queries.tuned_jobs(current_user())]
    return jsonify(object="list", data=queries.base_models() + tuned)


@bp.get("/models/<path:model_id>")
def get_model(model_id: str):
    """One model by its id."""
    return jsonify(queries.find_model(current_user(), model_id))
