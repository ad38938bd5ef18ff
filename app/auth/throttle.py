"""The sign-in slow-down: failures counted per account and client, claimed atomically in Redis; no Flask here.

A wait earned by one client never holds back another: a stranger guessing from their own address only
slows themselves, and a browser that signed in to the account before (its device cookie) counts apart
even behind the stranger's address (OWASP's "device cookies").
"""
from __future__ import annotations

import hashlib
import math
import secrets

from itsdangerous import BadSignature, URLSafeTimedSerializer

from app.errors import StudioError

# A few typos cost nothing; from the FREE_LOGIN_FAILURES-th failed attempt on, the account waits before its
# next attempt from that client, twice as long after each further failure, up to the cap.
FREE_LOGIN_FAILURES = 4
FIRST_LOGIN_DELAY_SECONDS = 2
MAX_LOGIN_DELAY_SECONDS = 15 * 60
# Failures are forgotten this long after the last one.
LOGIN_FAILURE_MEMORY_SECONDS = 60 * 60
DEVICE_COOKIE = "studio_device"
DEVICE_COOKIE_SECONDS = 365 * 24 * 3600
_DEVICE_SALT = "login-device"

# The wait (ms) a number of failures earns; ARGV: free failures, first delay (ms), longest delay (ms).
_DELAY = """
local function delay(failures)
  local free = tonumber(ARGV[1])
  return math.floor(math.min(tonumber(ARGV[2]) * 2 ^ math.min(failures - free, 30), tonumber(ARGV[3])))
end
"""
# Refuse while a wait runs; otherwise count this attempt as a failure *before* the password is checked, and
# impose the wait it would earn, all in one step: parallel attempts cannot all slip in before the first is
# counted. A success clears the count afterwards (forget()); a failure restarts the wait (end_failure()).
_BEGIN_ATTEMPT = _DELAY + """
local wait = redis.call('PTTL', KEYS[2])
if wait > 0 then return -wait end
local failures = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
if failures >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], failures, 'PX', delay(failures))
end
return failures
"""
# The wait runs from the end of the failed attempt, as a client sees it, not from its start.
_END_FAILURE = _DELAY + """
local failures = tonumber(redis.call('GET', KEYS[2]))
if failures then redis.call('PEXPIRE', KEYS[2], delay(failures)) end
return 0
"""


class LoginThrottled(StudioError):
    """This client failed to sign in to the account too often recently; it must wait."""

    status = 429
    code = "rate_limited"

    def __init__(self, retry_after: int):
        """Say how many seconds the client must wait."""
        super().__init__(f"Too many failed sign-ins for this account; try again in {retry_after} seconds.",
                         details={"retry_after": retry_after})
        self.retry_after = retry_after


def _digest(text: str) -> str:
    """A SHA-256 hex digest, so Redis and cookies hold no email or address."""
    return hashlib.sha256(text.encode()).hexdigest()


def attempt_keys(email: str, client: str) -> list[str]:
    """The Redis keys of one account and client: its failure count and its wait."""
    pair = f"{_digest(email)[:32]}:{_digest(client)[:32]}"
    return [f"login-failures:{pair}", f"login-wait:{pair}"]


def _args() -> list[int]:
    """The scripts' arguments: free failures, first and longest delay (ms), memory (s)."""
    return [FREE_LOGIN_FAILURES, FIRST_LOGIN_DELAY_SECONDS * 1000, MAX_LOGIN_DELAY_SECONDS * 1000,
            LOGIN_FAILURE_MEMORY_SECONDS]


def begin_attempt(redis, keys: list[str]) -> None:
    """Claim one attempt for keys, counted as failed until forget(); LoginThrottled during a wait."""
    outcome = int(redis.eval(_BEGIN_ATTEMPT, len(keys), *keys, *_args()))
    if outcome < 0:
        raise LoginThrottled(math.ceil(-outcome / 1000))


def end_failure(redis, keys: list[str]) -> None:
    """The attempt failed: its wait, if it earned one, starts now."""
    redis.eval(_END_FAILURE, len(keys), *keys, *_args())


def forget(redis, keys: list[str]) -> None:
    """The attempt succeeded: clear the client's failures and wait on the account."""
    redis.delete(*keys)


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    """Signs device cookies with the app's secret."""
    return URLSafeTimedSerializer(secret_key, salt=_DEVICE_SALT)


def device_cookie(secret_key: str, email: str) -> str:
    """A signed cookie value naming a fresh device that signed in to this account."""
    return _serializer(secret_key).dumps({"account": _digest(email)[:32], "device": secrets.token_urlsafe(16)})


def client_id(secret_key: str, cookie: str | None, email: str, address: str) -> str:
    """Who an attempt counts against: the device, when its cookie is valid for this account, else the address."""
    if cookie:
        try:
            value = _serializer(secret_key).loads(cookie, max_age=DEVICE_COOKIE_SECONDS)
        except BadSignature:
            value = None
        if isinstance(value, dict) and value.get("account") == _digest(email)[:32]:
            return f"device:{value.get('device')}"
    return f"address:{address}"
