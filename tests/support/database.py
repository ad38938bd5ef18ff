"""The test PostgreSQL server: scratch databases, emptying tables between tests, counting an app's queries."""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import peewee
import psycopg2

from app.db import database
from app.models import ALL_MODELS

ADMIN_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def postgres_url(name: str) -> str:
    """The test server's URL for database name."""
    return ADMIN_DATABASE_URL.rsplit("/", 1)[0] + "/" + name


def admin_execute(sql: str) -> None:
    """Run one statement on the maintenance database, outside a transaction."""
    connection = psycopg2.connect(ADMIN_DATABASE_URL)
    connection.autocommit = True
    try:
        connection.cursor().execute(sql)
    finally:
        connection.close()


@contextmanager
def scratch_postgres_database() -> Iterator[str]:
    """Create an empty PostgreSQL database with a unique name; yield its URL; drop it."""
    name = f"studio_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin_execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_url(name)
    finally:
        admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def truncate_all_tables() -> None:
    """Empty every table of the bound database, so the next test starts clean."""
    db = database.obj
    with db.connection_context():
        if isinstance(db, peewee.PostgresqlDatabase):
            tables = ", ".join(f'"{m._meta.table_name}"' for m in ALL_MODELS)
            db.execute_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        else:
            for model in reversed(ALL_MODELS):
                model.delete().execute()


@contextmanager
def counted_queries(db: peewee.Database | None = None) -> Iterator[list[str]]:
    """Record the SQL of every query the app (or db) runs inside the block (peewee's query hooks)."""
    queries: list[str] = []
    db = db or database.obj

    def record(event):
        queries.append(event.sql)

    db.query_hooks.append(record)
    try:
        yield queries
    finally:
        db.query_hooks.remove(record)
