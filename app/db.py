"""The database: chosen by DATABASE_URL, opened per request and per job, migrated by versioned scripts."""
from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import itertools
import os
import re
import time
import weakref
from pathlib import Path
from urllib.parse import urlparse

import peewee
from playhouse.db_url import parse as parse_database_url
from playhouse.migrations import Runner
from playhouse.pool import PooledPostgresqlDatabase

# Models bind to this proxy; create_app points it at the configured database.
database = peewee.DatabaseProxy()

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# An arbitrary constant that names our migration lock among PostgreSQL advisory locks.
MIGRATION_LOCK_ID = 7_215_004_231

# Connections a forked child inherited from its parent. They are kept referenced so that garbage
# collection never closes them: closing would end the parent's session on the shared socket.
_inherited_connections: list = []

# busy_timeout first: the switch to WAL takes a lock too, and without the timeout in place a connection opened
# while another holds it fails at once with "database is locked" (seen when processes start together).
SQLITE_PRAGMAS = {
    "busy_timeout": 5000,
    "journal_mode": "wal",
    "foreign_keys": 1,
    "synchronous": "normal",
}


class PooledDatabase(PooledPostgresqlDatabase):
    """peewee's PostgreSQL pool, minus the `SELECT 1` it sends each time a pooled connection is taken: a round
    trip on every request, the biggest part of a poll answered 304. A connection handed back moments ago
    (RECENT_SECONDS) is taken as it is; one idle longer is checked as before, since the server may have
    restarted meanwhile. A connection that dies within that second fails its request with a 503 and is dropped,
    as one lost in the middle of a request is."""

    RECENT_SECONDS = 1.0

    def __init__(self, *args, **kwargs):
        """The pool, and when each idle connection was handed back."""
        self._returned_at = weakref.WeakKeyDictionary()
        # The names of the statements prepared on each connection (they last as long as its session).
        self._prepared = weakref.WeakKeyDictionary()
        super().__init__(*args, **kwargs)

    def _close(self, conn, close_conn=False):
        """Hand the connection back (or close it), noting when."""
        super()._close(conn, close_conn)
        if not close_conn:
            self._returned_at[conn] = time.monotonic()

    def _is_closed(self, conn):
        """Whether the pooled connection is unusable; asked the server only when it has been idle a while."""
        returned = self._returned_at.pop(conn, None)
        recent = returned is not None and time.monotonic() - returned < self.RECENT_SECONDS
        if recent and not conn.closed and self._adapter.txn_status(conn) == self._adapter.txn_idle:
            return False
        return super()._is_closed(conn)


    def execute_prepared(self, sql: str, arguments: list):
        """Run sql (peewee's, with %s parameters) as a statement prepared once per connection, so that the server
        plans it once (a poll's queries took longer to plan than to run); the cursor, as execute_sql returns it.
        The first time on a connection, PREPARE and EXECUTE go together in one round trip. The parameters' types
        come from the arguments' Python types; arguments of other types run sql unprepared."""
        types = tuple(PREPARED_TYPES.get(type(argument)) for argument in arguments)
        if None in types:
            return self.execute_sql(sql, arguments)
        name = "studio_" + hashlib.blake2s(repr((sql, types)).encode(), digest_size=10).hexdigest()
        execute = f"EXECUTE {name} ({', '.join(['%s'] * len(arguments))})" if arguments else f"EXECUTE {name}"
        prepared = self._prepared.setdefault(self.connection(), set())
        if name in prepared:
            return self.execute_sql(execute, arguments)
        cursor = self.execute_sql(f"PREPARE {name} ({', '.join(types)}) AS {_numbered(sql)}; {execute}", arguments)
        prepared.add(name)
        return cursor


# PostgreSQL's types for the Python values a prepared statement takes (bool before int: it is one).
PREPARED_TYPES = {bool: "boolean", int: "bigint", float: "double precision", str: "text"}


def _numbered(sql: str) -> str:
    """sql with peewee's %s parameters numbered as PostgreSQL's $1, $2… (%% escapes left for psycopg2)."""
    numbers = itertools.count(1)
    return re.sub(r"%[s%]", lambda found: found.group() if found.group() == "%%" else f"${next(numbers)}", sql)


class DatabaseConfigError(ValueError):
    """DATABASE_URL names something the Studio cannot use."""


def make_database(url: str, pool_size: int = 10, pool_timeout: int = 10) -> peewee.Database:
    """A pooled PostgreSQL or a WAL-mode SQLite database for the URL; connects nothing yet."""
    scheme = urlparse(url).scheme
    if scheme in ("postgres", "postgresql"):
        params = parse_database_url(url, unquote_password=True, unquote_user=True)
        # The only statements the Studio prepares are its polls' (execute_prepared), whose generic plans use the
        # same indexes as a custom one; left to choose, the server kept planning the chart's query each time.
        params["options"] = f"{params.get('options', '')} -c plan_cache_mode=force_generic_plan".strip()
        return PooledDatabase(
            params.pop("database"),
            max_connections=pool_size,
            timeout=pool_timeout,
            stale_timeout=300,
            autoconnect=False,
            connect_timeout=params.pop("connect_timeout", 5),
            **params,
        )
    if scheme == "sqlite":
        path = url.removeprefix("sqlite:///")
        if not path or path == ":memory:":
            raise DatabaseConfigError("DATABASE_URL: SQLite needs a file path, e.g. sqlite:///data/studio.db")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return peewee.SqliteDatabase(path, pragmas=SQLITE_PRAGMAS, autoconnect=False)
    raise DatabaseConfigError(f"DATABASE_URL: unsupported scheme {scheme!r}; use postgresql:// or sqlite:///")


def bind(db: peewee.Database) -> None:
    """Point the models at db."""
    database.initialize(db)


def init_app(app) -> None:
    """Open a connection for each request that needs one and always release it."""
    if "static" in app.view_functions:
        manages_own_connection(app.view_functions["static"])

    @app.before_request
    def _open_connection():
        from flask import request

        view = app.view_functions.get(request.endpoint)
        if not getattr(view, "manages_own_connection", False):
            database.connect(reuse_if_open=True)

    @app.teardown_request
    def _release_connection(_exc):
        if not database.is_closed():
            database.close()


def execute_compiled(build, values: dict[int, object], *args):
    """Run the query build(*args) makes, compiled once per database and arguments, with each stand-in parameter
    (a key of `values`, an integer no real parameter takes) swapped for its value: for the queries of every poll,
    where compiling a peewee query costs more than running it; on PostgreSQL prepared once per connection.
    Returns the query (its own reader turns rows into models: `query._get_cursor_wrapper(cursor)`) and the
    cursor."""
    query, (sql, params) = _compiled(database.obj, build, args)
    arguments = [values.get(value, value) if isinstance(value, int) else value for value in params]
    if isinstance(database.obj, PooledDatabase):
        return query, database.obj.execute_prepared(sql, arguments)
    # SQLite: Python's sqlite3 keeps the statements it compiled, per connection, already.
    return query, database.execute_sql(sql, arguments)


def model_from_row(model: type[peewee.Model], fields: tuple, row: tuple) -> peewee.Model:
    """An instance of model from a row of the fields' columns, each converted by its field, built as peewee's
    reader builds one (no defaults filled in, nothing marked dirty): that reader works out which column goes where
    on every execution, which cost a poll more than its query."""
    instance = model(__no_default__=1, **{field.name: field.python_value(value)
                                          for field, value in zip(fields, row, strict=True)})
    instance._dirty.clear()
    return instance


@functools.lru_cache(maxsize=64)
def _compiled(_database, build, args: tuple) -> tuple:
    """The query build(*args) makes and its SQL and parameters, for one database."""
    query = build(*args)
    return query, query.sql()


def manages_own_connection(view):
    """Mark a view that must answer even when the database is down (health, static files)."""
    view.manages_own_connection = True
    return view


def forget_inherited_connections() -> None:
    """In a freshly forked child, drop (without closing) any connection the parent held."""
    db = database.obj
    if db is None:
        return
    if db._state.conn is not None:
        _inherited_connections.append(db._state.conn)
    db._state.reset()
    if isinstance(db, PooledPostgresqlDatabase):
        _inherited_connections.extend(conn for _ts, _n, conn in db._connections)
        _inherited_connections.extend(pooled.connection for pooled in db._in_use.values())
        db._connections = []
        db._in_use = {}


os.register_at_fork(after_in_child=forget_inherited_connections)


@contextlib.contextmanager
def migration_lock(db: peewee.Database):
    """Serialise concurrent upgrades (web and worker starting together) before deciding what to apply."""
    if isinstance(db, peewee.PostgresqlDatabase):
        db.execute_sql("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
        try:
            yield
        finally:
            db.execute_sql("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))
    else:
        # SQLite lives on this machine, so a lock file beside it serialises every process.
        with open(f"{db.database}.migrate-lock", "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)


def migration_runner(db: peewee.Database | None = None) -> Runner:
    """The runner for our migrations folder."""
    return Runner(db or database.obj, directory=str(MIGRATIONS_DIR))


def upgrade(db: peewee.Database | None = None) -> list[str]:
    """Apply every pending migration; returns their names (none when up to date)."""
    db = db or database.obj
    with db.connection_context(), migration_lock(db):
        return migration_runner(db).up()


def pending_migrations(db: peewee.Database | None = None) -> list[str]:
    """The names of migrations not yet applied."""
    db = db or database.obj
    with db.connection_context():
        return [m.name for m in migration_runner(db).status() if not m.applied]
