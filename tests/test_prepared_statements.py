"""Statements prepared once per PostgreSQL connection (the polls' queries): planned once, the same rows as the
same SQL run plainly, one round trip the first time, never prepared twice on a connection."""
from __future__ import annotations

import pytest

from app.db import make_database
from tests.support.database import counted_queries

SQL = "SELECT %s + 1, %s || '100%%', %s"


@pytest.fixture
def pool(postgres_database_url):
    """A pool of the test database."""
    db = make_database(postgres_database_url)
    yield db
    db.close_all()


def prepared_here(pool) -> list[str]:
    """The statements the current connection has prepared."""
    return [row[0] for row in pool.execute_sql("SELECT statement FROM pg_prepared_statements").fetchall()]


def test_a_statement_is_prepared_once_per_connection_and_answers_as_the_plain_one(pool):
    with pool.connection_context():
        with counted_queries(pool) as queries:
            first = pool.execute_prepared(SQL, [41, "up to ", True]).fetchall()
            second = pool.execute_prepared(SQL, [1, "", False]).fetchall()
        assert first == [(42, "up to 100%", True)] and second == [(2, "100%", False)]
        assert first == pool.execute_sql(SQL, [41, "up to ", True]).fetchall()
        assert len(queries) == 2, "PREPARE goes with the first EXECUTE, in one round trip"
        assert queries[0].startswith("PREPARE ") and queries[1].startswith("EXECUTE ")
        assert len(prepared_here(pool)) == 1


def test_each_connection_prepares_its_own(pool, postgres_database_url):
    other = make_database(postgres_database_url)
    try:
        for db in (pool, other):
            with db.connection_context():
                assert db.execute_prepared(SQL, [1, "a", True]).fetchall() == [(2, "a100%", True)]
                assert len(prepared_here(db)) == 1
    finally:
        other.close_all()


def test_arguments_of_other_types_run_the_statement_unprepared(pool):
    with pool.connection_context(), counted_queries(pool) as queries:
        assert pool.execute_prepared("SELECT %s IS NULL", [None]).fetchall() == [(True,)]
        assert queries == ["SELECT %s IS NULL"] and prepared_here(pool) == []


def test_a_statement_prepared_in_a_rolled_back_transaction_stays_prepared(pool):
    with pool.connection_context():
        with pool.atomic() as transaction:
            pool.execute_prepared(SQL, [1, "a", True])
            transaction.rollback()
        assert pool.execute_prepared(SQL, [2, "b", False]).fetchall() == [(3, "b100%", False)]
        assert len(prepared_here(pool)) == 1


def test_the_sessions_plan_prepared_statements_once(pool, postgres_database_url):
    # Left to choose, the server kept planning the chart's query on each execution (its generic plan's estimate
    # looked dearer), which is what preparing it was meant to save; options given in the URL are kept.
    with pool.connection_context():
        assert pool.execute_sql("SHOW plan_cache_mode").fetchone() == ("force_generic_plan",)
    other = make_database(postgres_database_url + "?options=-c%20statement_timeout%3D5000")
    try:
        with other.connection_context():
            assert other.execute_sql("SHOW plan_cache_mode").fetchone() == ("force_generic_plan",)
            assert other.execute_sql("SHOW statement_timeout").fetchone() == ("5s",)
    finally:
        other.close_all()
