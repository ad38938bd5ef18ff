"""Shared fixtures: a real PostgreSQL database and Redis database per test process, apps built on them."""
from __future__ import annotations

import os
import uuid

import pytest
from redis import Redis

from app.auth import service as auth_service
from app.db import database, make_database, upgrade
from app.factory import create_app
from app.settings import Settings
from tests.support.accounts import PASSWORD, login
from tests.support.database import scratch_postgres_database, truncate_all_tables
from tests.support.i18n import compile_catalogs
from tests.support.seaweed import seaweed_server
from tests.support.settings import make_settings

BASE_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_CLAIM_PREFIX = "studio-tests:claimed-db:"
REDIS_CLAIM_SECONDS = 2 * 3600


@pytest.fixture
def empty_postgres_database():
    """The URL of a new, empty PostgreSQL database for one test."""
    with scratch_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_database_url():
    """The URL of this test process's PostgreSQL database, migrated once and shared by its tests."""
    with scratch_postgres_database() as url:
        db = make_database(url)
        upgrade(db)
        db.close_all()
        yield url


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    """A SeaweedFS S3 server for this test process, on its own ports, requiring signed requests."""
    with seaweed_server(tmp_path_factory.mktemp("seaweed"), access_key="studio-test",
                        secret_key=uuid.uuid4().hex) as server:
        yield server


@pytest.fixture
def s3_settings(tmp_path, postgres_database_url, redis_url, redis, seaweed) -> Settings:
    """Settings of a production-shaped app: PostgreSQL and S3 (a bucket of its own, not created yet)."""
    return make_settings(tmp_path, postgres_database_url, redis_url, minio_endpoint=seaweed.endpoint,
                         minio_user=seaweed.access_key, minio_password=seaweed.secret_key,
                         minio_bucket=f"t-{uuid.uuid4().hex[:20]}")


@pytest.fixture(scope="session")
def redis_url():
    """A Redis database (1–15) claimed by this test process alone, even across concurrent test runs."""
    base = BASE_REDIS_URL.rsplit("/", 1)[0]
    claims = Redis.from_url(f"{base}/0")
    for index in range(1, 16):
        # Claims expire, so a test run killed without cleaning up frees its database eventually.
        if claims.set(f"{REDIS_CLAIM_PREFIX}{index}", os.getpid(), nx=True, ex=REDIS_CLAIM_SECONDS):
            try:
                yield f"{base}/{index}"
            finally:
                claims.delete(f"{REDIS_CLAIM_PREFIX}{index}")
                claims.close()
            return
    raise RuntimeError("every test Redis database (1–15) is claimed by another test process")


@pytest.fixture
def redis(redis_url):
    """A client on the test Redis database, emptied before and after the test."""
    client = Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def settings(tmp_path, postgres_database_url, redis_url, redis) -> Settings:
    """Settings of the test app: PostgreSQL, the test Redis, a local object folder."""
    return make_settings(tmp_path, postgres_database_url, redis_url)


@pytest.fixture
def app(settings):
    """The Studio app on the test services; its tables are emptied afterwards."""
    application = create_app(settings)
    application.config.update(TESTING=True)
    yield application
    truncate_all_tables()
    if hasattr(database.obj, "close_all"):
        database.obj.close_all()


@pytest.fixture
def client(app):
    """A test client of the app."""
    return app.test_client()


@pytest.fixture
def make_user(app):
    """Create users through the account service."""

    def make(email: str | None = None, password: str = PASSWORD, is_admin: bool = False):
        with app.app_context(), database.connection_context():
            return auth_service.create_user(email or f"user-{uuid.uuid4().hex[:8]}@example.com", password, is_admin)

    return make


@pytest.fixture
def user(make_user):
    """A signed-up user."""
    return make_user()


@pytest.fixture
def make_token(app):
    """Create API tokens through the account service; returns the plaintext."""

    def make(owner, name: str = "test token") -> str:
        with app.app_context(), database.connection_context():
            return auth_service.create_token(owner, name)[1]

    return make


@pytest.fixture
def logged_in(client, user):
    """A client signed in as user."""
    response = login(client, user.email)
    assert response.status_code == 302
    return client


@pytest.fixture
def make_app(tmp_path, postgres_database_url, redis_url, redis):
    """Build test apps with settings overrides (rate limits, proxies, origins…); their tables are emptied after."""
    built = []

    def make(**overrides):
        values = {"database_url": postgres_database_url, "redis_url": redis_url, **overrides}
        application = create_app(make_settings(tmp_path, values.pop("database_url"), values.pop("redis_url"), **values))
        application.config.update(TESTING=True)
        built.append(application)
        return application

    yield make
    if built:
        truncate_all_tables()
        database.obj.close_all()


@pytest.fixture
def server_settings(tmp_path, postgres_database_url, redis_url, redis):
    """Settings for a gunicorn started by a test, on this process's database and Redis."""
    return make_settings(tmp_path, postgres_database_url, redis_url)


@pytest.fixture(scope="session")
def translations():
    """The catalogs compiled, as scripts/setup.sh leaves them (a fresh checkout holds only the .po files)."""
    compile_catalogs()
