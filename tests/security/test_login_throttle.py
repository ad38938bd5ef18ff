"""The login slow-down holds back guessers, never the owner: per account and client, atomic, timing-blind."""
from __future__ import annotations

import threading

import pytest

from app.auth import service, throttle
from app.db import database
from app.models import User
from tests.support.accounts import PASSWORD, csrf_token_from, login

STRANGER, OWNER = "203.0.113.7", "198.51.100.20"


def client_at(app, address: str):
    """A test client whose requests come from address."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def logout(client) -> None:
    """Sign out through the page's form."""
    client.post("/logout", data={"csrf_token": csrf_token_from(client.get("/").get_data(as_text=True))})


def lock_out(client, email: str, attempts: int = 12) -> list[int]:
    """Fail to sign in as email again and again; the status codes."""
    return [login(client, email, "wrong password!").status_code for _ in range(attempts)]


def test_a_strangers_failures_do_not_hold_back_the_owner_elsewhere(make_app, make_user):
    app = make_app(rate_limit_expensive="1000/minute")
    victim = make_user()
    assert 429 in lock_out(client_at(app, STRANGER), victim.email)
    assert login(client_at(app, OWNER), victim.email).status_code == 302


def test_a_known_client_signs_in_even_behind_the_strangers_address(make_app, make_user):
    app = make_app(rate_limit_expensive="1000/minute")
    victim = make_user()
    owner = client_at(app, STRANGER)  # the same NAT: one public address for both
    assert login(owner, victim.email).status_code == 302
    logout(owner)
    assert 429 in lock_out(client_at(app, STRANGER), victim.email)
    # The owner's browser kept the device cookie of its last sign-in, so it counts apart from the stranger.
    assert login(owner, victim.email).status_code == 302


def test_a_device_cookie_of_one_account_does_not_help_with_another(make_app, make_user):
    app = make_app(rate_limit_expensive="1000/minute")
    mine, theirs = make_user(), make_user()
    attacker = client_at(app, STRANGER)
    assert login(attacker, mine.email).status_code == 302
    logout(attacker)
    assert 429 in lock_out(attacker, theirs.email)


def test_parallel_attempts_during_a_wait_get_no_extra_guesses(make_app, make_user, monkeypatch):
    app = make_app(rate_limit_expensive="1000/minute")
    victim = make_user()
    guesser = client_at(app, STRANGER)
    free = throttle.FREE_LOGIN_FAILURES - 1
    assert lock_out(guesser, victim.email, free) == [422] * free
    evaluated = count_password_checks(monkeypatch)
    clients = [client_at(app, STRANGER) for _ in range(8)]
    forms = [{"email": victim.email, "password": "wrong password!",
              "csrf_token": csrf_token_from(client.get("/login").get_data(as_text=True))} for client in clients]
    statuses, barrier = [], threading.Barrier(len(clients))

    def attempt(client, form):
        barrier.wait()
        statuses.append(client.post("/login", data=form).status_code)

    threads = [threading.Thread(target=attempt, args=pair) for pair in zip(clients, forms, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # The last free attempt is the only one whose password was looked at; the others were told to wait.
    assert sorted(statuses) == [422] + [429] * 7
    assert len(evaluated) == 1


def count_password_checks(monkeypatch) -> list[str]:
    """Record each password hash the account service checks (the real check still runs)."""
    checked: list[str] = []
    real = service.check_password_hash

    def counting(stored_hash, password):
        checked.append(stored_hash)
        return real(stored_hash, password)

    monkeypatch.setattr(service, "check_password_hash", counting)
    return checked


@pytest.mark.parametrize("case", ["right password", "wrong password", "unknown email", "inactive account"])
def test_every_sign_in_hashes_exactly_one_password(app, client, make_user, monkeypatch, case):
    account = make_user()
    if case == "inactive account":
        with app.app_context(), database.connection_context():
            User.update(is_active=False).where(User.id == account.id).execute()
    checked = count_password_checks(monkeypatch)
    email = "nobody-here@example.com" if case == "unknown email" else account.email
    password = PASSWORD if case in ("right password", "inactive account") else "wrong password!"
    response = login(client, email, password)
    assert response.status_code == (302 if case == "right password" else 422)
    assert len(checked) == 1
    # Unknown and inactive accounts are checked against a hash of the same kind and cost as a real one.
    assert checked[0].split("$")[0] == account.password_hash.split("$")[0]
