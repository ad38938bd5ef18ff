"""Linking a user's Kaggle account through the Kaggle backend: Kaggle's refusal becomes a 422 naming the field."""
from __future__ import annotations

import logging

from app.errors import Conflict, ServiceUnavailable, ValidationFailed
from app.jobs.backends import BackendError
from app.jobs.backends.kaggle import accounts
from app.jobs.backends.kaggle.backend import KaggleBackend, Patience
from app.models import KaggleAccount, User

log = logging.getLogger(__name__)

# A person waits for the answer: two short attempts.
LINK_PATIENCE = Patience(attempts=2, backoff_seconds=0.5, timeout=(5.0, 15.0))


def link_checked(ctx, user: User, payload) -> KaggleAccount:
    """Check the credentials with one cheap Kaggle call, then store them encrypted (app/secrets_at_rest.py)."""
    if KaggleBackend.name not in ctx.settings.backend_names:
        raise Conflict("Kaggle is not one of this Studio's training backends (TRAINING_BACKENDS).")
    backend = KaggleBackend(ctx.settings, ctx.redis, LINK_PATIENCE)

    def verify(credentials: accounts.Credentials) -> str:
        """Whose the credentials are, as Kaggle says; a refusal names the field to fix."""
        try:
            return backend.verify(credentials)
        except BackendError as error:
            if error.transient:
                raise ServiceUnavailable(f"Kaggle did not answer; try again. ({error.message})") from None
            field = "token" if credentials.token else "key"
            problem = "Kaggle refused it: check it on kaggle.com → Settings → API"
            raise ValidationFailed("Kaggle did not accept these credentials.", details={field: problem}) from None

    account = accounts.link(user, ctx.settings, payload, verify)
    log.info("user %s linked the Kaggle account %s", user.id, account.username)
    return account
