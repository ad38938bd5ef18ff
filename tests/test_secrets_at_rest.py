"""Secrets at rest: authenticated encryption, keys rotated without losing what was stored."""
from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from app.db import database
from app.models import KaggleAccount
from app.secrets_at_rest import SecretBox, SecretUnreadable
from app.settings import Settings

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def test_a_secret_comes_back_and_its_ciphertext_does_not_show_it():
    box = SecretBox.from_settings(Settings(secrets_keys=OLD))
    ciphertext = box.encrypt("kaggle-key-0123456789")
    assert "kaggle-key" not in ciphertext and box.decrypt(ciphertext) == "kaggle-key-0123456789"


def test_rotation_reencrypts_with_the_new_key_and_the_old_one_can_go():
    stored = SecretBox.from_settings(Settings(secrets_keys=OLD)).encrypt("the key")
    both = SecretBox.from_settings(Settings(secrets_keys=f"{NEW},{OLD}"))
    assert both.decrypt(stored) == "the key"  # still readable before rotation
    rotated = both.rotate(stored)
    only_new = SecretBox.from_settings(Settings(secrets_keys=NEW))
    assert only_new.decrypt(rotated) == "the key"
    with pytest.raises(SecretUnreadable):
        only_new.decrypt(stored)


def test_an_altered_ciphertext_is_refused():
    box = SecretBox.from_settings(Settings(secrets_keys=OLD))
    ciphertext = box.encrypt("the key")
    altered = ciphertext[:-6] + ("A" if ciphertext[-6] != "A" else "B") + ciphertext[-5:]
    with pytest.raises(SecretUnreadable):
        box.decrypt(altered)


def test_without_keys_one_is_derived_from_the_secret_key():
    first = SecretBox.from_settings(Settings(secret_key="s" * 40))
    assert SecretBox.from_settings(Settings(secret_key="s" * 40)).decrypt(first.encrypt("x")) == "x"
    with pytest.raises(SecretUnreadable):
        SecretBox.from_settings(Settings(secret_key="t" * 40)).decrypt(first.encrypt("x"))


def test_a_malformed_key_is_refused_naming_its_position():
    with pytest.raises(ValidationError, match="key 2 is not a Fernet key"):
        Settings(secrets_keys=f"{OLD},not-a-key")


def test_flask_secrets_rotate_reencrypts_every_linked_account(make_app, make_user):
    app = make_app(secrets_keys=f"{NEW},{OLD}")
    owner = make_user()
    with app.app_context(), database.connection_context():
        KaggleAccount.create(user=owner.id, username="alice", kind="key",
                             secret=SecretBox.from_settings(Settings(secrets_keys=OLD)).encrypt("alice-key"))
    result = app.test_cli_runner().invoke(args=["secrets", "rotate"])
    assert result.exit_code == 0 and "re-encrypted 1 secret" in result.output
    with app.app_context(), database.connection_context():
        stored = KaggleAccount.get(KaggleAccount.user == owner.id).secret
    assert SecretBox.from_settings(Settings(secrets_keys=NEW)).decrypt(stored) == "alice-key"
