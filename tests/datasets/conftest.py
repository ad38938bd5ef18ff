"""Dataset tests run on PostgreSQL and the real S3 server, with small limits so limits are cheap to hit."""
from __future__ import annotations

import pytest

from tests.support.datasets import INLINE_LIMIT, UPLOAD_LIMIT


@pytest.fixture
def settings(s3_settings):
    """The app's settings: S3 storage, a 256 KB upload limit, inline validation up to 64 KB."""
    return s3_settings.model_copy(update={"dataset_max_bytes": UPLOAD_LIMIT,
                                          "dataset_inline_validation_bytes": INLINE_LIMIT})


@pytest.fixture
def owner(make_user):
    """The user who uploads."""
    return make_user()


@pytest.fixture
def headers(owner, make_token):
    """The owner's API headers."""
    return {"Authorization": f"Bearer {make_token(owner)}"}
