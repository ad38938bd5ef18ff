"""Streamed downloads of stored objects (artifacts), shared by the pages and the API."""
from __future__ import annotations

from urllib.parse import quote

from flask import Response, stream_with_context

from app.extensions import get_store
from app.jobs import archive, artifacts
from app.models import Artifact, Job


def artifact_response(artifact: Artifact) -> Response:
    """The artifact's bytes, streamed, with its size and a download file name."""
    chunks = get_store().iter_chunks(artifact.object_key)
    response = Response(stream_with_context(chunks), mimetype="application/octet-stream")
    response.headers["Content-Length"] = str(artifact.size_bytes)
    response.headers["Content-Disposition"] = attachment_disposition(artifact.name.rsplit("/", 1)[-1])
    response.call_on_close(chunks.close)
    return response


def attachment_disposition(filename: str) -> str:
    """A Content-Disposition value that makes a browser save the download as filename."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def archive_response(job: Job, prefix: str = "") -> Response:
    """The job's artifacts whose names start with prefix, as one zip archive streamed as it is made."""
    members = [a for a in artifacts.list_artifacts(job) if a.name.startswith(prefix)]
    response = Response(stream_with_context(archive.stream_zip(get_store(), members)), mimetype="application/zip")
    response.headers["Content-Disposition"] = attachment_disposition(f"job-{job.id}-artifacts.zip")
    response.headers["X-Archive-Members"] = str(len(members))
    return response
