"""Fixtures of the page tests: a signed-in browser-like client, and rows built inside the app."""
from __future__ import annotations

import pytest

from app.db import database
from tests.support.accounts import csrf_token_from, login


@pytest.fixture
def settings(settings):
    """The test app's settings without rate limits: page tests send many requests from one address."""
    return settings.model_copy(update={"rate_limits_enabled": False})


@pytest.fixture
def owner(make_user):
    """The user whose pages are looked at."""
    return make_user()


@pytest.fixture
def browser(client, owner):
    """A client signed in as the owner, carrying the CSRF token of its session as .csrf."""
    assert login(client, owner.email).status_code == 302
    client.csrf = csrf_token_from(client.get("/jobs").get_data(as_text=True))
    return client


@pytest.fixture
def in_db(app):
    """Run a function inside the app with a database connection (to build or read rows)."""
    def run(function, *args, **kwargs):
        with app.app_context(), database.connection_context():
            return function(*args, **kwargs)

    return run
