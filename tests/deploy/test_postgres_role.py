"""scripts/postgres_role.sh, the postgres container's init script, on the real PostgreSQL: the app's own role."""
from __future__ import annotations

import os
import subprocess
import uuid
from urllib.parse import urlsplit

import psycopg2
import pytest

from app.db import make_database, upgrade
from app.settings import PROJECT_ROOT
from tests.support.database import ADMIN_DATABASE_URL, admin_execute

SCRIPT = PROJECT_ROOT / "scripts" / "postgres_role.sh"


@pytest.fixture
def initialised(empty_postgres_database):
    """An empty database set up by the init script as the container would: (database URL of the app, role)."""
    role, password = f"studio_{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    admin = urlsplit(ADMIN_DATABASE_URL)
    name = empty_postgres_database.rsplit("/", 1)[1]
    env = {"PATH": os.environ["PATH"], "PGHOST": admin.hostname or "127.0.0.1", "PGPORT": str(admin.port or 5432),
           "POSTGRES_USER": admin.username or "postgres", "POSTGRES_DB": name,
           "STUDIO_DB_USER": role, "STUDIO_DB_PASSWORD": password}
    result = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert password not in result.stdout + result.stderr
    try:
        yield f"postgresql://{role}:{password}@{env['PGHOST']}:{env['PGPORT']}/{name}", role
    finally:
        admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin_execute(f'DROP ROLE IF EXISTS "{role}"')


def test_the_app_role_can_migrate_and_use_its_database_but_is_no_superuser(initialised):
    url, role = initialised
    db = make_database(url)
    assert upgrade(db)
    with db.connection_context():
        flags = db.execute_sql("SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = %s",
                               (role,)).fetchone()
        owners = {row[0] for row in db.execute_sql("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")}
    db.close_all()
    assert flags == (False, False, False)
    assert owners == {role}
    connection = psycopg2.connect(url)
    connection.autocommit = True
    try:
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            connection.cursor().execute("CREATE ROLE intruder SUPERUSER")
    finally:
        connection.close()
