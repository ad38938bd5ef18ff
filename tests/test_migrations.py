"""Versioned migrations on both databases: from empty, idempotent, serialised, matching the models."""
from __future__ import annotations

import json
import threading
from collections import Counter

import pytest
from peewee import SqliteDatabase
from playhouse.schema_diff import diff_models

from app.db import MIGRATIONS_DIR, make_database, migration_runner, pending_migrations, upgrade
from app.jobs import metric_points
from app.models import ALL_MODELS, JobEvent

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
    # A chart's thinned series and each series' last point (migration 0011).
    assert {("job_id", "series", "level", "id"), ("job_id", "series", "id")} <= indexed


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


def test_metric_points_recorded_before_their_columns_are_numbered_as_the_app_numbers_them(fresh_database):
    with fresh_database.connection_context():
        migration_runner(fresh_database).up("0010_list_indexes")
    types = ["progress", "eval", None, "progress", "progress", "eval", "x" * 17, "progress"]
    mark = "?" if isinstance(fresh_database, SqliteDatabase) else "%s"
    with fresh_database.connection_context():
        fresh_database.execute_sql("INSERT INTO \"user\" (email, password_hash, is_admin, is_active, created_at) "
                                   "VALUES ('a@example.com', 'x', false, true, '2026-01-01')")
        fresh_database.execute_sql(
            "INSERT INTO job (owner_id, name, base_model, method, backend, hyperparameters, status, step, epoch, "
            "stage, attempts, stage_attempts, remote_open, created_at, updated_at) VALUES (1, 'j', 'm', 'lora', "
            "'local', '{}', 'running', 0, 0, 'run', 0, 0, false, '2026-01-01', '2026-01-01')")
        for step, kind in enumerate(types):
            fresh_database.execute_sql(  # only the placeholder is formatted in
                f"INSERT INTO job_event (job_id, kind, message, data, created_at) VALUES (1, {mark}, '', {mark}, "  # noqa: S608
                "'2026-01-01')", ("metric" if kind else "log", json.dumps({"type": kind, "step": step})))
    upgrade(fresh_database)
    with fresh_database.connection_context(), fresh_database.bind_ctx(ALL_MODELS):
        found = list(JobEvent.select(JobEvent.series, JobEvent.point, JobEvent.level).order_by(JobEvent.id).tuples())
    counts, expected = Counter(), []
    for kind in types:
        series = metric_points.series_of("metric" if kind else "log", {"type": kind})
        counts[series] += 1
        expected.append((series, counts[series], metric_points.level_of(counts[series])) if series else (None,) * 3)
    assert found == expected
    assert found[:5] == [("progress", 1, 0), ("eval", 1, 0), (None, None, None), ("progress", 2, 1), ("progress", 3, 0)]


def test_the_marks_of_jobs_recorded_before_their_columns_are_set_from_their_events(fresh_database):
    with fresh_database.connection_context():
        migration_runner(fresh_database).up("0011_metric_points")
        mark = "?" if isinstance(fresh_database, SqliteDatabase) else "%s"
        fresh_database.execute_sql("INSERT INTO \"user\" (email, password_hash, is_admin, is_active, created_at) "
                                   "VALUES ('a@example.com', 'x', false, true, '2026-01-01')")
        for _job in range(2):
            fresh_database.execute_sql(
                "INSERT INTO job (owner_id, name, base_model, method, backend, hyperparameters, status, step, epoch,"
                " stage, attempts, stage_attempts, remote_open, created_at, updated_at) VALUES (1, 'j', 'm', 'lora',"
                " 'local', '{}', 'running', 0, 0, 'run', 0, 0, false, '2026-01-01', '2026-01-01')")
        for kind in ("log", "metric", "status", "log", "metric"):
            fresh_database.execute_sql(  # only the placeholder is formatted in
                f"INSERT INTO job_event (job_id, kind, message, created_at) VALUES (1, {mark}, '', '2026-01-01')",  # noqa: S608
                (kind,))
        fresh_database.execute_sql("INSERT INTO artifact (job_id, name, object_key, size_bytes, created_at) "
                                   "VALUES (1, 'a', 'k', 1, '2026-01-01')")
    upgrade(fresh_database)
    with fresh_database.connection_context():
        found = fresh_database.execute_sql("SELECT id, last_log_id, last_status_id, last_point_id, artifact_count "
                                           "FROM job ORDER BY id").fetchall()
    assert [tuple(row) for row in found] == [(1, 4, 3, 5, 1), (2, None, None, None, 0)]
