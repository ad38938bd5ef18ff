"""Where uploaded files and artefacts live: the ObjectStore interface (base.py), on S3 (s3.py) or in a local
folder (local.py); make_store picks one from the settings."""
from __future__ import annotations

from app.storage.base import (
    CHUNK_SIZE,
    MAX_KEY_LENGTH,
    TEMP_PREFIX,
    ChunkIterator,
    InvalidKey,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    StorageError,
    validate_key,
    validate_prefix,
)
from app.storage.local import LocalObjectStore
from app.storage.s3 import PART_SIZE, S3ObjectStore

__all__ = ["CHUNK_SIZE", "MAX_KEY_LENGTH", "PART_SIZE", "TEMP_PREFIX", "ChunkIterator", "InvalidKey",
           "LocalObjectStore", "ObjectInfo", "ObjectNotFound", "ObjectStore", "S3ObjectStore", "StorageError",
           "make_store", "validate_key", "validate_prefix"]


def make_store(settings) -> ObjectStore:
    """The S3 store when an endpoint is configured, else the local folder."""
    if settings.uses_s3:
        return S3ObjectStore(
            settings.minio_endpoint,
            settings.minio_user,
            settings.minio_password,
            settings.minio_bucket,
            secure=settings.minio_secure,
            region=settings.minio_region or None,
        )
    return LocalObjectStore(settings.resolved_storage_dir)
