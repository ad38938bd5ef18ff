"""Fixtures for the object-store tests: a fresh store of each kind per test (the server is in tests/conftest.py)."""
from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from app.storage import LocalObjectStore, ObjectStore, S3ObjectStore
from tests.support.seaweed import SeaweedServer


def unique_bucket() -> str:
    """A bucket name no other test uses."""
    return f"t-{uuid.uuid4().hex[:20]}"


@pytest.fixture
def make_s3_store(seaweed: SeaweedServer) -> Callable[..., S3ObjectStore]:
    """Build S3 stores on the server, each in a bucket of its own; keyword arguments override settings."""

    def make(**overrides: object) -> S3ObjectStore:
        """A store with the server's settings, except for overrides."""
        options = {
            "endpoint": seaweed.endpoint,
            "access_key": seaweed.access_key,
            "secret_key": seaweed.secret_key,
            "bucket": unique_bucket(),
        }
        return S3ObjectStore(**{**options, **overrides})

    return make


@pytest.fixture
def s3_store(make_s3_store) -> S3ObjectStore:
    """An S3 store on a bucket that does not exist yet."""
    return make_s3_store()


@pytest.fixture
def local_store(tmp_path) -> LocalObjectStore:
    """A local store in a folder that does not exist yet."""
    return LocalObjectStore(tmp_path / "objects")


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> ObjectStore:
    """Each implementation in turn, so one suite states the contract for both."""
    return request.getfixturevalue(f"{request.param}_store")
