"""The dataset API on PostgreSQL and S3: upload, statistics, preview, limits, failures, deletion."""
from __future__ import annotations

import hashlib
import io
import json

import pytest
from minio import Minio

from app.db import database
from app.factory import create_app
from app.models import Dataset
from tests.support.data import as_jsonl, examples
from tests.support.datasets import UPLOAD_LIMIT, bucket_keys, upload
from tests.support.factories import make_job
from tests.support.http import fetch
from tests.support.processes import kill_tree
from tests.support.seaweed import seaweed_server
from tests.support.waiting import wait_until
from tests.support.web import gunicorn
from tests.support.workers import idle_workers, worker_pool


def dataset_rows(app) -> int:
    """How many datasets exist."""
    with app.app_context(), database.connection_context():
        return Dataset.select().count()


def test_upload_validates_and_describes_a_small_file_at_once(client, headers, settings):
    data = as_jsonl(examples("chat", 20))
    response = upload(client, headers, data, "chat.jsonl", name="Arithmetic")
    body = response.get_json()
    assert response.status_code == 201, body
    assert response.headers["Location"] == f"/api/v1/datasets/{body['id']}"
    assert body["status"] == "ready" and body["format"] == "chat" and body["file_format"] == "jsonl"
    assert body["example_count"] == 20 and body["size_bytes"] == len(data)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["stats"]["messages_per_example"]["max"] == 3
    assert sorted(bucket_keys(settings)) == sorted([f"datasets/{k}" for k in _keys_of(body, settings)])


def _keys_of(body, settings) -> list[str]:
    """The object names (original, normalised and its record index) stored for a ready dataset."""
    folder = next(key for key in bucket_keys(settings) if key.endswith("/original")).split("/")[1]
    return [f"{folder}/original", f"{folder}/normalized.jsonl", f"{folder}/normalized.index"]


def test_invalid_upload_is_kept_as_invalid_with_its_report(client, headers):
    data = as_jsonl(examples("text", 12)) + b'{"text": 3}\n'
    body = upload(client, headers, data).get_json()
    assert body["status"] == "invalid"
    message = "'text' must be a string, not a number"
    assert body["errors"]["errors"] == [{"line": 13, "kind": "wrong_type", "message": message}]


def test_preview_pages_through_canonical_records(client, headers):
    body = upload(client, headers, as_jsonl(examples("instruction", 30))).get_json()
    page = client.get(f"/api/v1/datasets/{body['id']}/preview?offset=10&limit=5", headers=headers).get_json()
    assert [record["instruction"] for record in page["data"]] == [f"Double {i}." for i in range(10, 15)]
    assert page["meta"] == {"offset": 10, "limit": 5, "total": 30, "format": "instruction", "truncated": []}
    assert client.get(f"/api/v1/datasets/{body['id']}/preview?limit=101", headers=headers).status_code == 422


def test_format_can_be_forced_and_bad_fields_are_named(client, headers):
    csv_as_txt = b"prompt,completion\n" + b"".join(f"p{i},c{i}\n".encode() for i in range(12))
    assert upload(client, headers, csv_as_txt, "notes.txt", format="csv").get_json()["format"] == "prompt_completion"
    response = upload(client, headers, csv_as_txt, "notes.txt", format="xml", max_seq_length="9")
    assert response.status_code == 422
    assert set(response.get_json()["error"]["details"]) == {"format", "max_seq_length"}


def test_filename_with_path_traversal_is_reduced_to_its_last_segment(client, headers, settings):
    body = upload(client, headers, as_jsonl(examples("text")), "../../../../etc/passwd").get_json()
    assert body["filename"] == "passwd" and body["name"] == "passwd"
    assert all(key.startswith("datasets/") and ".." not in key for key in bucket_keys(settings))


def test_oversized_upload_is_413_and_nothing_is_stored(app, client, headers, settings):
    data = as_jsonl([{"text": "x" * 1000}] * (UPLOAD_LIMIT // 1000 + 10))
    response = upload(client, headers, data)
    assert response.status_code == 413
    assert str(UPLOAD_LIMIT) in response.get_json()["error"]["message"]
    assert dataset_rows(app) == 0 and bucket_keys(settings) == []


def test_oversized_chunked_upload_to_gunicorn_is_stopped_while_streaming(app, headers, settings, tmp_path):
    data = as_jsonl([{"text": "x" * 1000}] * (UPLOAD_LIMIT // 1000 + 10))
    boundary = "b0undary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\n\r\n'.encode()
            + data + f"\r\n--{boundary}--\r\n".encode())
    pieces = (body[i:i + 8192] for i in range(0, len(body), 8192))  # pieces of no declared length go chunked
    with gunicorn(settings, tmp_path / "gunicorn.log") as web:
        reply = fetch(web.url, "/api/v1/datasets", "POST", body=pieces,
                      headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert reply.status == 413, reply.body
    assert dataset_rows(app) == 0 and bucket_keys(settings) == []


@pytest.mark.parametrize("content_type", [None, "application/json", "multipart/form-data"])
def test_upload_needs_a_multipart_body_with_a_file(client, headers, content_type):
    response = client.post("/api/v1/datasets", headers=headers, data=b"{}", content_type=content_type)
    assert response.status_code in (415, 400, 422)
    assert response.get_json()["error"]["code"] in ("unsupported_media_type", "bad_request", "validation_failed")


def test_large_file_is_validated_by_a_worker(app, client, headers, settings, redis, tmp_path):
    data = as_jsonl(examples("prompt_completion", 3000))
    assert len(data) > settings.dataset_inline_validation_bytes
    response = upload(client, headers, data)
    assert response.status_code == 202 and response.get_json()["status"] == "processing"
    url = response.headers["Location"]
    with worker_pool(settings, tmp_path / "worker.log"):
        wait_until(lambda: idle_workers(redis) == 1, 60, "a worker to wait for work")
        done = wait_until(lambda: client.get(url, headers=headers).get_json()["status"] != "processing", 60,
                          "the worker to validate the dataset")
    body = client.get(url, headers=headers).get_json()
    assert done and body["status"] == "ready" and body["example_count"] == 3000, (tmp_path / "worker.log").read_text()


def test_delete_removes_the_row_and_its_objects(app, client, headers, settings):
    body = upload(client, headers, as_jsonl(examples("text"))).get_json()
    assert client.delete(f"/api/v1/datasets/{body['id']}", headers=headers).status_code == 204
    assert client.get(f"/api/v1/datasets/{body['id']}", headers=headers).status_code == 404
    assert dataset_rows(app) == 0 and bucket_keys(settings) == []


@pytest.mark.parametrize("job_status, expected", [("running", 409), ("queued", 409), ("succeeded", 204)])
def test_delete_is_refused_while_an_unfinished_job_uses_the_dataset(app, client, headers, owner, job_status,
                                                                    expected):
    body = upload(client, headers, as_jsonl(examples("text"))).get_json()
    with app.app_context(), database.connection_context():
        job = make_job(owner, Dataset.get_by_id(body["id"]), status=job_status)
    response = client.delete(f"/api/v1/datasets/{body['id']}", headers=headers)
    assert response.status_code == expected
    if expected == 409:
        assert response.get_json()["error"]["details"] == {"jobs": [job.id]}
    else:
        with app.app_context(), database.connection_context():
            assert type(job).get_by_id(job.id).dataset_id is None


def test_list_filters_by_name(client, headers):
    for name in ("alpha set", "beta set", "Alpha two"):
        upload(client, headers, as_jsonl(examples("text")), name=name)
    names = [d["name"] for d in client.get("/api/v1/datasets?q=alpha", headers=headers).get_json()["data"]]
    assert sorted(names) == ["Alpha two", "alpha set"]


def test_html_in_names_and_records_comes_back_as_plain_json(client, headers):
    evil = '<script>alert("x")</script>'
    body = upload(client, headers, as_jsonl([{"text": evil}] * 12), name=evil).get_json()
    assert body["name"] == evil
    preview = client.get(f"/api/v1/datasets/{body['id']}/preview", headers=headers)
    assert json.loads(preview.data)["data"][0]["text"] == evil


class _KillingBody:
    """A multipart upload body that SIGKILLs the storage server once kill_after bytes were read."""

    def __init__(self, data: bytes, boundary: str, pid: int, kill_after: int):
        """Frame data as the 'file' part."""
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f.jsonl"\r\n\r\n'
        self.body = io.BytesIO(head.encode() + data + f"\r\n--{boundary}--\r\n".encode())
        self.length, self.pid, self.kill_after = len(self.body.getvalue()), pid, kill_after

    def read(self, size: int = -1) -> bytes:
        """The next bytes; the server dies when the threshold is crossed."""
        if self.pid and self.body.tell() >= self.kill_after:
            kill_tree(self.pid)
            self.pid = 0
        return self.body.read(size)

    def tell(self) -> int:
        """Where reading is (the test client asks)."""
        return self.body.tell()

    def seek(self, position: int, whence: int = 0) -> int:
        """Move (the test client rewinds once before the request)."""
        return self.body.seek(position, whence)


def test_storage_failing_mid_upload_leaves_no_row_and_no_object(app, headers, tmp_path, make_user):
    """A multipart upload (more than one 16 MiB part) loses its S3 server half way through."""
    workdir, boundary = tmp_path / "doomed-s3", "k1llb0undary"
    data = as_jsonl([{"text": "y" * 1000}] * 40_000)
    with seaweed_server(workdir, "doomed", "doomed-secret") as server:
        doomed = app.extensions["settings"].model_copy(update={
            "minio_endpoint": server.endpoint, "minio_user": "doomed", "minio_password": "doomed-secret",
            "dataset_max_bytes": 100 * 1024 * 1024})
        doomed_app = create_app(doomed)
        body = _KillingBody(data, boundary, server.pid, kill_after=20 * 1024 * 1024)
        response = doomed_app.test_client().post(
            "/api/v1/datasets", headers=headers, input_stream=body, content_length=body.length,
            content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 503, response.get_data(as_text=True)
    assert "nothing was saved" in response.get_json()["error"]["message"]
    assert dataset_rows(app) == 0
    with seaweed_server(workdir, "doomed", "doomed-secret") as restarted:
        client = Minio(restarted.endpoint, "doomed", "doomed-secret", secure=False)
        assert client.bucket_exists(doomed.minio_bucket), "the upload had begun before the server died"
        assert list(client.list_objects(doomed.minio_bucket, recursive=True)) == []
