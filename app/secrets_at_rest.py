"""Secrets kept encrypted at rest: Fernet (AES-128-CBC + HMAC-SHA256) with a list of keys for rotation.

SECRETS_KEYS holds Fernet keys, newest first: the first encrypts, every one decrypts, so a key is rotated by
putting a new one in front, running `flask secrets rotate` (each stored secret encrypted again with it), then
dropping the old one. Without SECRETS_KEYS one key is derived from SECRET_KEY, so a Studio works out of the box.
No Flask here: the job backends decrypt in the worker.
"""
from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

DERIVATION_CONTEXT = b"finetune-studio secrets at rest v1"


class SecretUnreadable(Exception):
    """A stored secret that none of the keys opens (a key was dropped before `flask secrets rotate` ran)."""


def derived_key(secret_key: str) -> bytes:
    """A Fernet key derived from SECRET_KEY (used when SECRETS_KEYS is empty)."""
    digest = hashlib.sha256(DERIVATION_CONTEXT + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest)


def key_problem(key: str) -> str | None:
    """Why key is not a Fernet key, or None when it is."""
    try:
        Fernet(key.encode())
    except (ValueError, TypeError):
        return "not a Fernet key (32 url-safe base64 bytes: python -c 'from cryptography.fernet import Fernet; " \
               "print(Fernet.generate_key().decode())')"
    return None


class SecretBox:
    """Encrypts with the newest key, decrypts with any of them."""

    def __init__(self, keys: list[bytes]):
        """keys: Fernet keys, newest first (at least one)."""
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    @classmethod
    def from_settings(cls, settings) -> SecretBox:
        """The box of SECRETS_KEYS, or of the key derived from SECRET_KEY."""
        keys = [key.strip().encode() for key in settings.secrets_keys.split(",") if key.strip()]
        return cls(keys or [derived_key(settings.secret_key)])

    def encrypt(self, plaintext: str) -> str:
        """The authenticated ciphertext of plaintext, as text for a column."""
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        """The plaintext; SecretUnreadable when no key opens it or it was altered."""
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise SecretUnreadable("a stored secret cannot be decrypted with SECRETS_KEYS") from None

    def rotate(self, ciphertext: str) -> str:
        """The same secret encrypted with the newest key."""
        try:
            return self._fernet.rotate(ciphertext.encode()).decode()
        except InvalidToken:
            raise SecretUnreadable("a stored secret cannot be decrypted with SECRETS_KEYS") from None
