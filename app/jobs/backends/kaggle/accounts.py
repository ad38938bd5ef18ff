"""Whose Kaggle account a job uses: the owner's own (linked, its secret encrypted at rest) or the shared one.

Linking checks the credentials with Kaggle before anything is stored; the key or token is never returned, never
logged and only decrypted in the process that calls Kaggle with it. No Flask here: the API, the pages and the
worker call the same functions.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from app.errors import NotFound, ValidationFailed
from app.jobs.backends import BackendError
from app.models import KaggleAccount, User, utcnow
from app.secrets_at_rest import SecretBox, SecretUnreadable

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MAX_SECRET_LENGTH = 4096
NO_ACCOUNT_MESSAGE = ("No Kaggle credentials to run this job with: link your Kaggle account first (Settings → "
                      "Kaggle, or PUT /api/v1/me/kaggle); this Studio offers no shared Kaggle account.")


@dataclass(frozen=True)
class Credentials:
    """What the client authenticates with; the secret stays out of repr (and so out of every log line)."""

    username: str | None
    key: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    owner_id: int | None = None        # whose own account; None for the shared one

    def client_values(self) -> dict[str, str]:
        """The client's config values: user name and key, or the access token."""
        if self.token:
            return {"token": self.token}
        return {"username": self.username or "", "key": self.key or ""}

    def fingerprint(self) -> str:
        """A digest naming these credentials, to keep one client per account in a process."""
        return hashlib.sha256(json.dumps([self.username, self.key, self.token]).encode()).hexdigest()

    def ref(self) -> dict:
        """What a job's backend_ref records to find these credentials again (never the secret)."""
        return {"account": self.username, "credentials_of": self.owner_id}


def shared(settings) -> Credentials | None:
    """The server-wide account, when the admin offers it (KAGGLE_SHARED_ACCOUNT) to new jobs and configured it."""
    return server(settings) if settings.kaggle_shared_account else None


def server(settings) -> Credentials | None:
    """The server-wide account, when configured: what jobs that run on it already (started before the upgrade
    that brought personal accounts, or while it was offered) keep using, offered or not."""
    if not settings.has_kaggle_credentials:
        return None
    if settings.kaggle_api_token:
        return Credentials(settings.kaggle_username or None, token=settings.kaggle_api_token)
    return Credentials(settings.kaggle_username, key=settings.kaggle_key)


def own(user_id: int, settings) -> Credentials | None:
    """The user's linked account, decrypted; None when they linked none."""
    account = KaggleAccount.get_or_none(KaggleAccount.user == user_id)
    if account is None:
        return None
    try:
        secret = SecretBox.from_settings(settings).decrypt(account.secret)
    except SecretUnreadable as error:
        raise BackendError(f"The linked Kaggle account of user {user_id} cannot be read ({error}); "
                           "link it again.") from None
    values = {"token": secret} if account.kind == "token" else {"key": secret}
    return Credentials(account.username, owner_id=user_id, **values)


def for_owner(user_id: int, settings) -> Credentials | None:
    """The account a new job of this user runs on: their own, else the shared one if offered."""
    return own(user_id, settings) or shared(settings)


def for_ref(ref: dict, settings) -> Credentials:
    """The credentials a job's backend_ref names; a permanent BackendError when they are gone."""
    owner_id = ref.get("credentials_of")
    found = own(owner_id, settings) if owner_id is not None else server(settings)
    if found is None:
        whose = "its owner's Kaggle account was unlinked" if owner_id is not None else \
            "the server's credentials (KAGGLE_USERNAME/KAGGLE_KEY) are gone"
        raise BackendError(f"The Kaggle account this job runs on is no longer available: {whose}.")
    return found


def parse_link(payload) -> Credentials:
    """Credentials from {"username", "key"} or {"token"}; ValidationFailed names each bad field."""
    if not isinstance(payload, dict):
        raise ValidationFailed('Send {"username", "key"} or {"token"} as a JSON object.', details={"field": "body"})
    problems = {name: "not a field; send username and key, or token" for name in payload
                if name not in ("username", "key", "token")}
    for name in ("username", "key", "token"):
        value = payload.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_SECRET_LENGTH):
            problems[name] = "must be a string"
    token, username, key = (str(payload.get(name) or "").strip() for name in ("token", "username", "key"))
    if token and (username or key):
        problems["token"] = "send either a token or a username and key, not both"  # noqa: S105 (a message)
    elif not token:
        if not USERNAME.match(username):
            problems["username"] = "your Kaggle user name (letters, digits, - and _)"
        if not key:
            problems["key"] = "the API key from kaggle.com → Settings → API"
    if problems:
        raise ValidationFailed("The Kaggle credentials are incomplete.", details=problems)
    return Credentials(None, token=token) if token else Credentials(username, key=key)


def link(user: User, settings, payload, verify: Callable[[Credentials], str]) -> KaggleAccount:
    """Check the credentials with Kaggle (verify returns whose they are), then store them encrypted."""
    credentials = parse_link(payload)
    username = verify(credentials)
    secret = credentials.token or credentials.key
    values = {"username": username, "kind": "token" if credentials.token else "key",
              "secret": SecretBox.from_settings(settings).encrypt(secret), "linked_at": utcnow()}
    (KaggleAccount.insert(user=user.id, **values)
     .on_conflict(conflict_target=[KaggleAccount.user], update=values).execute())
    return KaggleAccount.get(KaggleAccount.user == user.id)


def unlink(user: User) -> None:
    """Forget the user's Kaggle account; NotFound when none is linked."""
    if not KaggleAccount.delete().where(KaggleAccount.user == user.id).execute():
        raise NotFound("No Kaggle account is linked.")


def link_view(user: User, settings) -> dict:
    """What the user may see of their link: whether, whose, how and since when (never the secret)."""
    account = KaggleAccount.get_or_none(KaggleAccount.user == user.id)
    fallback = shared(settings)
    return {"linked": account is not None, "username": account.username if account else None,
            "kind": account.kind if account else None, "linked_at": account.linked_at if account else None,
            "shared_account_offered": fallback is not None}


def rotate_all(settings) -> int:
    """Encrypt every stored secret again with the newest key (`flask secrets rotate`); how many."""
    box, count = SecretBox.from_settings(settings), 0
    for account in KaggleAccount.select():
        KaggleAccount.update(secret=box.rotate(account.secret)).where(KaggleAccount.id == account.id).execute()
        count += 1
    return count
