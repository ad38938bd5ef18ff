"""Versioned migrations on both databases: from empty, idempotent, serialised, matching the models."""
from __future__ import annotations

import threading

import pytest
from playhouse.schema_diff import diff_models

from app.db import MIGRATIONS_DIR, make_database, pending_migrations, upgrade
from app.models import ALL_MODELS

MIGRATIONS = sorted(path.stem for path in MIGRATIONS_DIR.glob("[0-9]*.py"))


@pytest.fixture(params=["postgresql", "sqlite"])
def fresh_url(request, tmp_path):
    """The URL of an empty database of each kind."""
    if request.param == "postgresql":
        return request.getfixturevalue("empty_postgres_database")
    return f"sqlite:///{tmp_path / 'nested' / 'studio.db'}"


@pytest.fixture
def fresh_database(fresh_url):
    """An empty database of each kind, its connections closed afterwards."""
    db = make_database(fresh_url)
    yield db
    if hasattr(db, "close_all"):
        db.close_all()


def test_upgrade_creates_the_schema_then_does_nothing(fresh_database):
    assert MIGRATIONS[0] == "0001_initial"
    assert pending_migrations(fresh_database) == MIGRATIONS
    assert upgrade(fresh_database) == MIGRATIONS
    assert upgrade(fresh_database) == []
    assert pending_migrations(fresh_database) == []


def test_migrated_schema_matches_the_models(fresh_database):
    upgrade(fresh_database)
    with fresh_database.connection_context(), fresh_database.bind_ctx(ALL_MODELS):
        assert not diff_models(fresh_database, ALL_MODELS), "models changed without a migration"


def test_list_queries_have_their_indexes(fresh_database):
    upgrade(fresh_database)
    with fresh_database.connection_context():
        indexed = {tuple(index.columns) for table in ("dataset", "job", "job_event", "api_token", "artifact")
                   for index in fresh_database.get_indexes(table)}
    assert {("owner_id", "created_at"), ("job_id", "id"), ("user_id", "created_at")} <= indexed
    # Keyset pages and live polls (migration 0010).
    assert {("owner_id", "id"), ("owner_id", "status", "id"), ("job_id", "kind", "id")} <= indexed


def test_concurrent_upgrades_apply_each_migration_once(fresh_url):
    results, errors = [], []

    def run():
        db = make_database(fresh_url)
        try:
            results.append(upgrade(db))
        except Exception as error:  # collected, then asserted to be none
            errors.append(error)
        finally:
            if hasattr(db, "close_all"):
                db.close_all()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(len(applied) for applied in results) == [0, 0, len(MIGRATIONS)]
