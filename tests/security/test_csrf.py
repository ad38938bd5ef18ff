"""Every state-changing page request needs this session's CSRF token; the API, which takes no cookies, needs none."""
from __future__ import annotations

import pytest

from tests.support.accounts import csrf_token_from, login


def tokens_page_token(client) -> str:
    """The CSRF token of the client's session, as the tokens page renders it."""
    return csrf_token_from(client.get("/settings/tokens").get_data(as_text=True))


@pytest.mark.parametrize("token", [None, "", "forged-token", "IjEyMyI.Zm9v.YmFy"])
def test_a_form_post_with_a_missing_or_wrong_token_is_refused(logged_in, token):
    data = {"name": "sneaky"} | ({"csrf_token": token} if token is not None else {})
    response = logged_in.post("/settings/tokens", data=data)
    assert response.status_code == 400
    assert "sneaky" not in logged_in.get("/settings/tokens").get_data(as_text=True)


def test_a_token_from_another_session_is_refused(app, logged_in, make_user):
    stranger = app.test_client()
    login(stranger, make_user().email)
    response = logged_in.post("/settings/tokens", data={"name": "x", "csrf_token": tokens_page_token(stranger)})
    assert response.status_code == 400


def test_htmx_requests_need_the_token_header(logged_in):
    headers = {"HX-Request": "true"}
    assert logged_in.post("/settings/tokens", data={"name": "a"}, headers=headers).status_code == 400
    headers["X-CSRFToken"] = "wrong"
    assert logged_in.post("/settings/tokens", data={"name": "a"}, headers=headers).status_code == 400
    headers["X-CSRFToken"] = tokens_page_token(logged_in)
    assert logged_in.post("/settings/tokens", data={"name": "a"}, headers=headers).status_code == 200


def test_logout_and_login_need_the_token_too(logged_in, user):
    assert logged_in.post("/logout").status_code == 400
    assert logged_in.get("/").status_code == 200  # still signed in
    assert logged_in.post("/login", data={"email": user.email, "password": "x"}).status_code in (302, 400)
