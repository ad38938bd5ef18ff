"""Playground routes of the API: ask a succeeded job's model for a completion, then read it as it grows."""
from __future__ import annotations

from flask import jsonify, request, url_for

from app.api.auth import current_api_user
from app.api.blueprint import bp
from app.errors import NotFound
from app.extensions import enqueue, get_job_context
from app.models import Completion, Job
from app.playground.requests import request_completion
from app.security import polling


def completion_dict(completion: Completion) -> dict:
    """A completion as the API shows it: its text so far while it runs."""
    return {"id": completion.id, "status": completion.status, "text": completion.text, "tokens": completion.tokens,
            "error": completion.error, "adapter": completion.adapter,
            "first_token_seconds": completion.first_token_seconds}


@bp.post("/jobs/<int:job_id>/completions")
def create_completion(job_id: int):
    """Queue a completion; 202 with where to read it."""
    job = Job.get_owned(job_id, current_api_user())
    completion = request_completion(get_job_context(), current_api_user(), job, request.get_json(silent=True),
                                    enqueue)
    url = url_for("api.get_completion", job_id=job.id, completion_id=completion.id)
    response = jsonify(id=completion.id, status=completion.status, url=url)
    response.headers["Location"] = url
    return response, 202


@bp.get("/jobs/<int:job_id>/completions/<int:completion_id>")
@polling
def get_completion(job_id: int, completion_id: int):
    """One completion of the job: queued, running (with the text so far), succeeded or failed."""
    job = Job.get_owned(job_id, current_api_user())
    completion = Completion.get_or_none((Completion.id == completion_id) & (Completion.job == job.id))
    if completion is None:
        raise NotFound("completion not found")
    return jsonify(completion_dict(completion))
