"""Result routes of the API: a job's samples, its kept checkpoints, and all its artifacts as one streamed zip."""
from __future__ import annotations

from flask import jsonify, request, url_for

from app.api import schemas
from app.api.auth import current_api_user
from app.api.blueprint import bp
from app.downloads import archive_response
from app.extensions import enqueue, get_store
from app.jobs import exports, judging
from app.models import Job
from app.queue import EXPORTS_QUEUE


@bp.get("/jobs/<int:job_id>/samples")
def list_job_samples(job_id: int):
    """The prompts the run answered at its end, with the reference, base and tuned answers."""
    job = Job.get_owned(job_id, current_api_user())
    return jsonify(data=[schemas.sample_dict(s) for s in judging.read_samples(get_store(), job)])


@bp.get("/jobs/<int:job_id>/checkpoints")
def list_job_checkpoints(job_id: int):
    """The kept checkpoints with their metrics, each downloadable as a zip of its adapter."""
    job = Job.get_owned(job_id, current_api_user())
    return jsonify(data=[schemas.checkpoint_dict(c, job.id) for c in judging.list_checkpoints(job)])


@bp.get("/jobs/<int:job_id>/artifacts.zip")
def download_job_archive(job_id: int):
    """Every artifact of the job (or those under ?prefix=) as one zip archive, streamed."""
    job = Job.get_owned(job_id, current_api_user())
    return archive_response(job, request.args.get("prefix", ""))



@bp.post("/jobs/<int:job_id>/export")
def export_job(job_id: int):
    """Queue an export (merged safetensors, or that plus an Ollama Modelfile); 202. It lands among the artifacts."""
    job = Job.get_owned(job_id, current_api_user())
    fmt = exports.check_request(job, request.get_json(silent=True))
    enqueue(exports.TASK, job.id, fmt, queue=EXPORTS_QUEUE, job_timeout=3600)
    return jsonify(job_id=job.id, format=fmt, status="queued",
                   artifacts=url_for("api.list_job_artifacts", job_id=job.id)), 202
