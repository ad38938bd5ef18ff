"""Deletion and validation serialise, object deletions that fail are not forgotten, and validation ends."""
from __future__ import annotations

from app.datasets import service
from app.db import database
from app.factory import create_app
from app.models import Dataset
from app.storage import S3ObjectStore, StorageError
from tests.support.data import as_jsonl, examples
from tests.support.datasets import bucket_keys, upload
from tests.support.ports import free_port
from tests.support.seaweed import seaweed_server
from workers import tasks


class DeletingStore(S3ObjectStore):
    """The real S3 store; just before validation stores its canonical copy, the dataset is deleted (as a DELETE
    request landing mid-validation would)."""

    def __init__(self, *args, dataset_id: int, **kwargs):
        """Delete dataset_id on the first write of a canonical copy."""
        super().__init__(*args, **kwargs)
        self.dataset_id, self.deleted = dataset_id, False

    def put(self, key, stream, *args, **kwargs):
        """Delete the dataset first if this is the canonical copy, then store."""
        if key.endswith("/normalized.jsonl") and not self.deleted:
            self.deleted = True
            service.delete_dataset(Dataset.get_by_id(self.dataset_id), self)
        return super().put(key, stream, *args, **kwargs)


def processing_dataset(client, headers, records: int = 3000) -> int:
    """The id of a dataset too large to be validated during its upload: it waits for a worker."""
    response = upload(client, headers, as_jsonl(examples("text", records)))
    assert response.status_code == 202
    return response.get_json()["id"]


def test_dataset_deleted_while_it_is_validated_leaves_no_object_and_no_row(app, client, headers, settings):
    dataset_id = processing_dataset(client, headers)
    store = DeletingStore(settings.minio_endpoint, settings.minio_user, settings.minio_password,
                          settings.minio_bucket, dataset_id=dataset_id)
    with app.app_context(), database.connection_context():
        service.run_validation(Dataset.get_by_id(dataset_id), store, settings.dataset_max_record_bytes)
        assert store.deleted and Dataset.get_or_none(Dataset.id == dataset_id) is None
    assert bucket_keys(settings) == [], "what the validator wrote for the deleted row is removed"


def test_validation_that_keeps_failing_ends_invalid_after_bounded_attempts(app, client, headers, settings):
    dataset_id = processing_dataset(client, headers)
    unreachable = create_app(settings.model_copy(update={"minio_endpoint": f"127.0.0.1:{free_port()}"}))
    outcomes = []
    with unreachable.app_context(), database.connection_context():
        # RQ's retries and the reconciler's re-enqueues each call the task again; a bounded number may fail.
        for _ in range(8):
            try:
                outcomes.append(tasks.validate_dataset(dataset_id))
            except StorageError:
                outcomes.append("storage error")
        dataset = Dataset.get_by_id(dataset_id)
    assert dataset.status == "invalid", f"still {dataset.status} after {outcomes}"
    assert outcomes.count("storage error") == service.MAX_VALIDATION_ATTEMPTS == dataset.validation_attempts
    [error] = dataset.validation_errors["errors"]
    assert error["kind"] == "attempts" and f"{service.MAX_VALIDATION_ATTEMPTS} attempts" in error["message"]
    assert "object storage unreachable" in error["message"], "the last failure is named"


def test_delete_while_storage_is_down_is_503_and_a_retry_completes_it(app, headers, tmp_path):
    workdir = tmp_path / "flaky-s3"
    with seaweed_server(workdir, "flaky", "flaky-secret") as server:
        flaky = app.extensions["settings"].model_copy(update={
            "minio_endpoint": server.endpoint, "minio_user": "flaky", "minio_password": "flaky-secret"})
        flaky_app = create_app(flaky)
        body = upload(flaky_app.test_client(), headers, as_jsonl(examples("text"))).get_json()
        assert body["status"] == "ready" and bucket_keys(flaky)
    response = flaky_app.test_client().delete(f"/api/v1/datasets/{body['id']}", headers=headers)
    assert response.status_code == 503, response.get_data(as_text=True)
    assert "try again" in response.get_json()["error"]["message"]
    with seaweed_server(workdir, "flaky", "flaky-secret") as restarted:
        again = create_app(flaky.model_copy(update={"minio_endpoint": restarted.endpoint}))
        client = again.test_client()
        assert client.get(f"/api/v1/datasets/{body['id']}", headers=headers).get_json()["status"] == "deleting"
        assert client.delete(f"/api/v1/datasets/{body['id']}", headers=headers).status_code == 204
        assert bucket_keys(flaky.model_copy(update={"minio_endpoint": restarted.endpoint})) == []
    with app.app_context(), database.connection_context():
        assert Dataset.get_or_none(Dataset.id == body["id"]) is None


def test_deleting_dataset_is_hidden_from_lists_and_cannot_be_trained_on(app, client, headers, owner):
    body = upload(client, headers, as_jsonl(examples("text"))).get_json()
    with app.app_context(), database.connection_context():
        Dataset.update(status="deleting").where(Dataset.id == body["id"]).execute()
    assert client.get("/api/v1/datasets", headers=headers).get_json()["data"] == []
    preview = client.get(f"/api/v1/datasets/{body['id']}/preview", headers=headers).get_json()
    assert preview["data"] == []


def test_validation_of_an_already_deleted_row_writes_nothing(app, client, headers, settings):
    dataset_id = processing_dataset(client, headers)
    with app.app_context(), database.connection_context():
        stale = Dataset.get_by_id(dataset_id)
        Dataset.delete().where(Dataset.id == dataset_id).execute()
        service.run_validation(stale, app.extensions["store"], settings.dataset_max_record_bytes)
    assert not [key for key in bucket_keys(settings) if not key.endswith("/original")]
