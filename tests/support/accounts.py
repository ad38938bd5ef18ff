"""Signing in as a browser does: the test password, the CSRF token a page renders, the login form."""
from __future__ import annotations

import re

PASSWORD = "correct horse battery"
CSRF_PATTERN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|"X-CSRFToken": "([^"]+)"')


def csrf_token_from(html: str) -> str:
    """The CSRF token rendered into a page (a hidden field or the htmx headers)."""
    match = CSRF_PATTERN.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1) or match.group(2)


def login(client, email: str, password: str = PASSWORD):
    """Sign in through the login form, CSRF token included; returns the response."""
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})
