"""The PostgreSQL pool: a connection handed back moments ago is reused without a round trip, one idle longer is
checked, and a dead one is never handed out twice."""
from __future__ import annotations

import peewee
import pytest

from app.db import make_database


@pytest.fixture
def pool(postgres_database_url):
    """A pool of the test database, and a separate plain connection to look at the server with."""
    db = make_database(postgres_database_url)
    yield db
    db.close_all()


def on_the_side(pool, sql: str, pid: int):
    """Run sql about the backend `pid` from a connection of its own, outside the pool."""
    other = peewee.PostgresqlDatabase(pool.database, **pool.connect_params)
    with other.connection_context():
        return other.execute_sql(sql, (pid,)).fetchone()[0]


def last_query_of(pool, pid: int) -> str:
    """What the server last ran for the backend `pid`."""
    return on_the_side(pool, "SELECT query FROM pg_stat_activity WHERE pid = %s", pid)


def backend_of(pool) -> int:
    return pool.connection().get_backend_pid()


def test_a_connection_handed_back_moments_ago_is_reused_without_asking_the_server(pool):
    with pool.connection_context():
        pool.execute_sql("SELECT 'the request before'")
        pid = backend_of(pool)
    with pool.connection_context():
        assert backend_of(pool) == pid
        assert last_query_of(pool, pid) == "SELECT 'the request before'"


def test_a_connection_idle_a_while_is_checked_first(pool):
    pool.RECENT_SECONDS = 0  # every handed-back connection counts as idle a while
    with pool.connection_context():
        pool.execute_sql("SELECT 'the request before'")
        pid = backend_of(pool)
    with pool.connection_context():
        assert backend_of(pool) == pid
        assert last_query_of(pool, pid) == "SELECT 1"


def terminate(pool, pid: int) -> None:
    """End the backend `pid` on the server, as a database restart does."""
    assert on_the_side(pool, "SELECT pg_terminate_backend(%s)", pid)


def test_a_connection_that_died_while_idle_a_while_is_replaced_unseen(pool):
    pool.RECENT_SECONDS = 0
    with pool.connection_context():
        pid = backend_of(pool)
    terminate(pool, pid)
    with pool.connection_context():
        assert pool.execute_sql("SELECT 2").fetchone() == (2,)
        assert backend_of(pool) != pid


def test_a_connection_that_died_moments_after_use_fails_one_request_and_is_dropped(pool):
    with pool.connection_context():
        pid = backend_of(pool)
    terminate(pool, pid)
    with pytest.raises(peewee.OperationalError), pool.connection_context():
        pool.execute_sql("SELECT 2")
    with pool.connection_context():
        assert pool.execute_sql("SELECT 3").fetchone() == (3,)
        assert backend_of(pool) != pid
