"""Endpoint secrets: made as `whsec_<base64>`, kept encrypted at rest with Fernet (WEBHOOKS_ENCRYPTION_KEY)."""
from __future__ import annotations

import base64
import hashlib
import secrets

from cryptography.fernet import Fernet

PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh signing secret in the Standard Webhooks form."""
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key_bytes(secret: str) -> bytes:
    """The HMAC key a `whsec_` secret stands for."""
    return base64.b64decode(secret.removeprefix(PREFIX))


def _fernet(settings) -> Fernet:
    """The cipher of this installation: the configured key, or one derived from SECRET_KEY."""
    key = settings.webhooks_encryption_key
    if not key:
        digest = hashlib.sha256(b"studio-webhook-secrets:" + settings.secret_key.encode()).digest()
        key = base64.urlsafe_b64encode(digest).decode()
    return Fernet(key)


def encrypt(settings, secret: str) -> str:
    """The secret as stored."""
    return _fernet(settings).encrypt(secret.encode()).decode()


def decrypt(settings, stored: str) -> str:
    """The secret a stored value holds."""
    return _fernet(settings).decrypt(stored.encode()).decode()
