"""Fixtures of the security tests: apps with chosen security settings, on the test services."""
from __future__ import annotations

import pytest

from app.db import database
from app.factory import create_app
from tests.conftest import make_settings, truncate_all_tables


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
