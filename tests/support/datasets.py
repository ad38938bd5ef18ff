"""Dataset uploads through the API's test client, and what they leave in the S3 bucket."""
from __future__ import annotations

import io

from minio import Minio

# The dataset tests' small limits, so that crossing them is cheap.
UPLOAD_LIMIT = 256 * 1024
INLINE_LIMIT = 64 * 1024


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
