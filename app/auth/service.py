"""Users, passwords and API tokens; no Flask here, so the CLI and workers share it."""
from __future__ import annotations

import datetime
import hashlib
import hmac
import re
import secrets

import peewee
from werkzeug.security import check_password_hash, generate_password_hash

from app.auth import throttle
from app.errors import Conflict, NotFound, ValidationFailed
from app.models import ApiToken, User, utcnow

MIN_PASSWORD_LENGTH = 10
TOKEN_PREFIX = "fts_"  # noqa: S105 (a marker that makes leaked tokens recognisable, not a secret)
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+$")
# Recording every use would write on every API call; once a minute is precise enough.
LAST_USED_RESOLUTION = datetime.timedelta(minutes=1)
# Checked when the email is unknown or the account inactive, so that every sign-in does the same work:
# one hash of the kind and cost new passwords get (werkzeug's default).
_DUMMY_HASH = generate_password_hash(secrets.token_urlsafe(16))


def normalize_email(email: str) -> str:
    """The email as stored: trimmed and lower-cased."""
    return (email or "").strip().lower()


def validate_credentials(email: str, password: str) -> None:
    """Raise ValidationFailed naming each bad field."""
    problems = {}
    if not EMAIL_PATTERN.match(email) or len(email) > 254:
        problems["email"] = "Enter a valid email address."
    if len(password or "") < MIN_PASSWORD_LENGTH:
        problems["password"] = f"Use at least {MIN_PASSWORD_LENGTH} characters."
    if problems:
        raise ValidationFailed("Invalid account details.", details=problems)


def create_user(email: str, password: str, is_admin: bool = False) -> User:
    """A new user with a hashed password; Conflict when the email is taken."""
    email = normalize_email(email)
    validate_credentials(email, password)
    try:
        return User.create(email=email, password_hash=generate_password_hash(password), is_admin=is_admin)
    except peewee.IntegrityError:
        raise Conflict(f"A user with email {email} already exists.", details={"email": "taken"}) from None


def authenticate(email: str, password: str) -> User | None:
    """The active user with these credentials, or None; always exactly one password hash checked."""
    user = User.get_or_none(User.email == normalize_email(email))
    if user is None or not user.is_active:
        check_password_hash(_DUMMY_HASH, password or "")
        return None
    if not check_password_hash(user.password_hash, password or ""):
        return None
    User.update(last_login_at=utcnow()).where(User.id == user.id).execute()
    return user


def sign_in(redis, email: str, password: str, client: str) -> User | None:
    """authenticate(), unless this client must wait after repeated failures on the account (LoginThrottled).

    client names where the attempt comes from (throttle.client_id): a stranger's failures elsewhere never
    count against it.
    """
    keys = throttle.attempt_keys(normalize_email(email), client)
    throttle.begin_attempt(redis, keys)
    user = authenticate(email, password)
    if user is None:
        throttle.end_failure(redis, keys)
    else:
        throttle.forget(redis, keys)
    return user


def generate_password() -> str:
    """A random password for generated accounts."""
    return secrets.token_urlsafe(18)


def _hash_token(plaintext: str) -> str:
    """The stored form of a token: tokens are long random strings, so a plain SHA-256 suffices."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


def create_token(user: User, name: str) -> tuple[ApiToken, str]:
    """A new token for user; the plaintext is returned once and never stored."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ValidationFailed("Invalid token name.", details={"name": "Give the token a name of 1–100 characters."})
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.create(user=user, name=name, token_hash=_hash_token(plaintext), prefix=plaintext[:10])
    return token, plaintext


def user_for_authorization(header: str) -> User | None:
    """The user of an `Authorization: Bearer <token>` header's live token, or None (the API and /v1 share it)."""
    scheme, _, token = header.partition(" ")
    return user_for_token(token.strip()) if scheme.lower() == "bearer" else None


def user_for_token(plaintext: str) -> User | None:
    """The active user a live token belongs to, or None; records the token's use."""
    if not plaintext or not plaintext.startswith(TOKEN_PREFIX):
        return None
    digest = _hash_token(plaintext)
    token = ApiToken.select(ApiToken, User).join(User).where(ApiToken.token_hash == digest).first()
    if token is None or not hmac.compare_digest(token.token_hash, digest):
        return None
    if token.is_revoked or not token.user.is_active:
        return None
    _touch(token)
    return token.user


def _touch(token: ApiToken) -> None:
    """Record that token was used, at most once per LAST_USED_RESOLUTION."""
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.update(last_used_at=now).where(ApiToken.id == token.id).execute()


def list_tokens(user: User) -> list[ApiToken]:
    """The user's tokens, newest first, revoked ones included."""
    query = ApiToken.select().where(ApiToken.user == user.id)
    return list(query.order_by(ApiToken.created_at.desc(), ApiToken.id.desc()))


def revoke_token(user: User, token_id) -> ApiToken:
    """Revoke one of user's tokens; NotFound for anyone else's."""
    token = ApiToken.get_or_none((ApiToken.id == _as_int(token_id)) & (ApiToken.user == user.id))
    if token is None:
        raise NotFound("token not found")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        token.save(only=[ApiToken.revoked_at])
    return token


def find_user(email: str) -> User:
    """The user with this email; NotFound otherwise."""
    user = User.get_or_none(User.email == normalize_email(email))
    if user is None:
        raise NotFound(f"No user with email {normalize_email(email)}.")
    return user


def _as_int(value) -> int:
    """value as an id, or -1 (which matches nothing) when it is not a number."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1
