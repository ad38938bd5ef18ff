"""Dataset tests run on PostgreSQL and the real S3 server, with small limits so limits are cheap to hit."""
from __future__ import annotations

import io

import pytest
from minio import Minio

UPLOAD_LIMIT = 256 * 1024
INLINE_LIMIT = 64 * 1024


@pytest.fixture
def settings(s3_settings):
    """The app's settings: S3 storage, a 256 KB upload limit, inline validation up to 64 KB."""
    return s3_settings.model_copy(update={"dataset_max_bytes": UPLOAD_LIMIT,
                                          "dataset_inline_validation_bytes": INLINE_LIMIT})


@pytest.fixture
def owner(make_user):
    """The user who uploads."""
    return make_user()


@pytest.fixture
def headers(owner, make_token):
    """The owner's API headers."""
    return {"Authorization": f"Bearer {make_token(owner)}"}


def upload(client, headers, data: bytes, filename: str = "data.jsonl", **fields):
    """POST a dataset file through the API."""
    form = {**{key: str(value) for key, value in fields.items()}, "file": (io.BytesIO(data), filename)}
    return client.post("/api/v1/datasets", headers=headers, data=form, content_type="multipart/form-data")


def bucket_keys(settings) -> list[str]:
    """Every object key in the app's bucket (none when the bucket was never created)."""
    client = Minio(settings.minio_endpoint, settings.minio_user, settings.minio_password, secure=False)
    if not client.bucket_exists(settings.minio_bucket):
        return []
    return [obj.object_name for obj in client.list_objects(settings.minio_bucket, recursive=True)]
