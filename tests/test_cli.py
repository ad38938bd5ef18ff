"""The command line: users, tokens, migrations."""
from __future__ import annotations

import subprocess
import sys

from app.auth import service
from app.db import database
from app.models import User
from app.settings import PROJECT_ROOT
from tests.support.settings import make_settings, settings_env


def run_cli(app, *args, input=None):
    """Invoke a flask command of app in-process."""
    return app.test_cli_runner().invoke(args=list(args), input=input)


def test_users_create_reads_the_password_from_stdin(app):
    result = run_cli(app, "users", "create", "Ada@Example.com", "--admin", "--password-stdin",
                     input="long enough password\n")
    assert result.exit_code == 0, result.stderr
    with app.app_context(), database.connection_context():
        assert service.authenticate("ada@example.com", "long enough password").is_admin


def test_users_create_reports_a_taken_email_and_a_short_password(app, user):
    taken = run_cli(app, "users", "create", user.email, "--password-stdin", input="long enough password\n")
    assert taken.exit_code == 2 and "already exists" in taken.stderr
    short = run_cli(app, "users", "create", "new@example.com", "--password-stdin", input="short\n")
    assert short.exit_code == 2 and "password" in short.stderr


def test_tokens_create_prints_only_a_working_token(app, client, user):
    result = run_cli(app, "tokens", "create", user.email, "--name", "ci")
    assert result.exit_code == 0
    token = result.stdout.strip()
    assert token.startswith("fts_") and "\n" not in token
    assert client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_tokens_create_for_an_unknown_user_fails_clearly(app):
    result = run_cli(app, "tokens", "create", "ghost@example.com", "--name", "x")
    assert result.exit_code == 2 and "No user" in result.stderr


def test_ensure_admin_creates_one_admin_only_on_an_empty_database(app):
    first = run_cli(app, "users", "ensure-admin")
    assert "created admin" in first.stdout
    password = first.stdout.split("password: ")[1].split()[0]
    assert "users exist" in run_cli(app, "users", "ensure-admin").stdout
    with app.app_context(), database.connection_context():
        assert User.select().count() == 1
        assert service.authenticate(User.get().email, password) is not None


def test_db_upgrade_and_status_from_the_command_line(tmp_path, redis_url):
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path}/cli.db", redis_url)
    env = settings_env(settings)

    def flask(*args):
        return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=PROJECT_ROOT, env=env,
                              capture_output=True, text=True, timeout=60)

    assert flask("db", "status").returncode == 1
    assert "applied: 0001_initial" in flask("db", "upgrade").stdout
    assert "up to date" in flask("db", "upgrade").stdout
    assert flask("db", "status").returncode == 0
