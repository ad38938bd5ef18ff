"""Lists paged by keyset: every row exactly once while rows are being added, counts bounded and labelled."""
from __future__ import annotations

import html
import re

import pytest

from app.db import database
from tests.support.accounts import login
from tests.support.database import counted_queries
from tests.support.factories import make_artifact, make_dataset, make_job


@pytest.fixture
def settings(settings):
    """No rate limits: one client walks many pages."""
    return settings.model_copy(update={"rate_limits_enabled": False})


@pytest.fixture
def owner(make_user):
    """The user whose lists are walked."""
    return make_user()


@pytest.fixture
def in_db(app):
    """Run a function inside the app with a database connection."""
    def run(function, *args, **kwargs):
        with app.app_context(), database.connection_context():
            return function(*args, **kwargs)

    return run


@pytest.mark.parametrize("kind", ["jobs", "datasets"])
def test_the_api_cursor_returns_every_row_exactly_once_while_rows_are_added(client, owner, make_token, in_db, kind):
    factory = {"jobs": make_job, "datasets": make_dataset}[kind]
    existing = {in_db(factory, owner).id for _ in range(23)}
    headers, seen, added, cursor = {"Authorization": f"Bearer {make_token(owner)}"}, [], set(), None
    while True:
        url = f"/api/v1/{kind}?per_page=5" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(url, headers=headers).get_json()
        seen += [row["id"] for row in body["data"]]
        added |= {in_db(factory, owner).id for _ in range(2)}  # newer rows arrive between pages
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(existing), "every row there at the start, once, and no newer one"
    assert len(seen) == len(set(seen))


def test_walking_the_pages_towards_the_newest_takes_in_rows_added_meanwhile(client, owner, in_db):
    first = [in_db(make_job, owner, name=f"walk {index}").id for index in range(12)]
    login(client, owner.email)
    url, seen, added = "/jobs?per_page=5&after=0", [], []
    while url:
        page = client.get(url).get_data(as_text=True)
        seen += [int(i) for i in re.findall(r'href="/jobs/(\d+)"', page)]
        if len(added) < 4:
            added += [in_db(make_job, owner, name="late").id for _ in range(2)]
        newer = re.search(r'<a href="([^"]+)"[^>]*rel="prev"', page)
        url = html.unescape(newer.group(1)) if newer else None
    assert sorted(seen) == sorted(first + added) and len(seen) == len(set(seen))


def test_a_list_page_costs_the_same_queries_at_any_depth_and_counts_stop_at_the_limit(make_app, make_user, client):
    app = make_app(list_count_limit=10, rate_limits_enabled=False)
    client = app.test_client()
    user = make_user()
    with app.app_context(), database.connection_context():
        ids = [make_job(user).id for _ in range(30)]
        make_artifact(make_job(user))
    login(client, user.email)
    costs = {}
    for name, query in {"first": "", "middle": f"&before={ids[15]}", "last": "&after=0"}.items():
        with counted_queries() as queries:
            page = client.get(f"/jobs?per_page=5{query}").get_data(as_text=True)
        costs[name] = len(queries)
        assert "more than 10 in all" in page, "past the limit the count is a lower bound, and says so"
    # The user, the bounded count, the rows; away from the first page, one index probe for the neighbour.
    assert costs == {"first": 3, "middle": 4, "last": 4}, costs
    assert all("OFFSET" not in sql for sql in queries[1:]), queries  # the first loads the session's user


def test_bad_cursors_are_422_naming_the_parameter(client, owner, make_token):
    headers = {"Authorization": f"Bearer {make_token(owner)}"}
    for query, field in (("cursor=abc", "cursor"), ("after=-1", "after"), ("before=0", "before")):
        response = client.get(f"/api/v1/jobs?{query}", headers=headers)
        assert response.status_code == 422 and response.get_json()["error"]["details"]["field"] == field, query
