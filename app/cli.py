"""Command-line tools: `flask --app wsgi db|users|tokens|secrets|check-config …` (users: create, ensure-admin,
limits; secrets: rotate)."""
from __future__ import annotations

import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app import db
from app.auth import quotas, service
from app.errors import StudioError
from app.jobs.backends.kaggle import accounts
from app.models import User

db_cli = AppGroup("db", help="Database schema migrations.")
users_cli = AppGroup("users", help="User accounts.")
tokens_cli = AppGroup("tokens", help="API tokens.")
secrets_cli = AppGroup("secrets", help="Secrets kept encrypted at rest.")


def init_app(app: Flask) -> None:
    """Register the command groups on app."""
    for group in (db_cli, users_cli, tokens_cli, secrets_cli):
        app.cli.add_command(group)
    app.cli.add_command(check_config)


@db_cli.command("upgrade")
def db_upgrade():
    """Apply every pending migration (safe to run again)."""
    applied = db.upgrade()
    click.echo("\n".join(f"applied: {name}" for name in applied) or "database is up to date")


@db_cli.command("status")
def db_status():
    """List pending migrations; exit 1 when there are some."""
    pending = db.pending_migrations()
    click.echo("\n".join(f"pending: {name}" for name in pending) or "database is up to date")
    sys.exit(1 if pending else 0)


@users_cli.command("create")
@click.argument("email")
@click.option("--admin", is_flag=True, help="Give the user admin rights.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def users_create(email: str, admin: bool, password_stdin: bool):
    """Create a user; the password is prompted for unless --password-stdin."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with db.database.connection_context():
        user = _or_exit(lambda: service.create_user(email, password, is_admin=admin))
    click.echo(f"created user {user.email}{' (admin)' if user.is_admin else ''}")


@users_cli.command("ensure-admin")
def users_ensure_admin():
    """Create a first admin when there is no user at all, printing its generated password once."""
    with db.database.connection_context():
        if User.select().exists():
            click.echo("users exist; no admin created")
            return
        password = service.generate_password()
        email = current_app.extensions["settings"].admin_email
        service.create_user(email, password, is_admin=True)
    click.echo(f"created admin {email} with password: {password}\n(shown once; sign in and keep it safe)")


def _limit_value(_ctx, _param, value: str | None):
    """A limit option: a whole number, `default` (the installation's), or not given (unchanged)."""
    if value is None or value == "default":
        return value
    if not value.isdigit():
        raise click.BadParameter("use a whole number of 0 or more, or 'default'")
    return int(value)


@users_cli.command("limits")
@click.argument("email")
@click.option("--max-active-jobs", callback=_limit_value, help="Jobs queued or running at once (or 'default').")
@click.option("--max-stored-bytes", callback=_limit_value, help="Bytes of datasets and artifacts (or 'default').")
@click.option("--max-uploads-per-day", callback=_limit_value, help="Uploads in any 24 hours (or 'default').")
def users_limits(email: str, **given):
    """Show a user's quotas, setting those given first."""
    changes = {name: None if value == "default" else value for name, value in given.items() if value is not None}
    settings = current_app.extensions["settings"]
    with db.database.connection_context():
        user = _or_exit(lambda: service.find_user(email))
        if changes:
            user = _or_exit(lambda: quotas.set_limits(user.id, changes))
        for name, entry in quotas.limits_view(user, settings).items():
            origin = "this user's" if entry["overridden"] else "default"
            click.echo(f"{name}: {entry['value']} ({origin})")


@tokens_cli.command("create")
@click.argument("email")
@click.option("--name", required=True, help="What the token is for.")
def tokens_create(email: str, name: str):
    """Create an API token for a user and print only the token."""
    with db.database.connection_context():
        user = _or_exit(lambda: service.find_user(email))
        _token, plaintext = _or_exit(lambda: service.create_token(user, name))
    click.echo(plaintext)


@secrets_cli.command("rotate")
def secrets_rotate():
    """Encrypt every stored secret again with the first of SECRETS_KEYS (then the old keys may go)."""
    with db.database.connection_context(), db.database.atomic():
        count = accounts.rotate_all(current_app.extensions["settings"])
    click.echo(f"re-encrypted {count} secret(s) with the newest key")


@click.command("check-config")
def check_config():
    """Report every problem of the configuration for production; exit 1 if there are any."""
    problems = current_app.extensions["settings"].problems()
    for problem in problems:
        click.echo(f"problem: {problem}", err=True)
    click.echo(f"{len(problems)} problem(s) found" if problems else "configuration OK for production")
    sys.exit(1 if problems else 0)


def _or_exit(action):
    """Run action; on a domain error print it to stderr and exit 2."""
    try:
        return action()
    except StudioError as error:
        details = f" {error.details}" if error.details else ""
        click.echo(f"error: {error.message}{details}", err=True)
        sys.exit(2)
