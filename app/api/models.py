"""The model catalog route: every base model with a GPU memory estimate per training method."""
from __future__ import annotations

from flask import jsonify, request

from app import catalog
from app.api.blueprint import bp
from app.pagination import int_arg

DEFAULT_MAX_SEQ_LENGTH, MAX_SEQ_LENGTH = 1024, 131072  # the training program's default; the longest context
DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE = 4, 256


def model_dict(entry: catalog.ModelEntry, max_seq_length: int, batch_size: int) -> dict:
    """A catalog entry with, for each method, its memory estimate and whether that fits a T4."""
    memory = {}
    for method in catalog.METHODS:  # dpo and orpo on LoRA
        estimate = catalog.estimate_for_method(entry, method, max_seq_length, batch_size)
        memory[method] = {**estimate.breakdown(), "fits_t4": catalog.fits(estimate)}
    return {
        "id": entry.id,
        "hub_id": entry.hub_id,
        "display_name": entry.display_name,
        "parameters": entry.parameters,
        "context_length": entry.context_length,
        "license": entry.license,
        "gated": entry.gated,
        "source": entry.source,
        "url": entry.url,
        "demo": entry.demo,
        "memory": memory,
    }


@bp.get("/models")
def list_models():
    """The base models, with memory estimates for the given max_seq_length and batch_size."""
    max_seq_length = int_arg(request.args, "max_seq_length", DEFAULT_MAX_SEQ_LENGTH, minimum=16, maximum=MAX_SEQ_LENGTH)
    batch_size = int_arg(request.args, "batch_size", DEFAULT_BATCH_SIZE, maximum=MAX_BATCH_SIZE)
    meta = {"max_seq_length": max_seq_length, "batch_size": batch_size, "gradient_checkpointing": True,
            "gpu_gb": catalog.T4_GB}
    return jsonify(data=[model_dict(entry, max_seq_length, batch_size) for entry in catalog.CATALOG], meta=meta)
