"""Settings of test apps, and the environment that hands exactly those settings to a child process."""
from __future__ import annotations

import os
from pathlib import Path

from app.settings import Settings


def make_settings(tmp_path: Path, database_url: str, redis_url: str, **overrides) -> Settings:
    """Settings for a test app; every field that could leak in from the environment is pinned."""
    values = dict(
        studio_env="test",
        secret_key="test-secret-key-" + "x" * 32,
        data_dir=tmp_path / "data",
        database_url=database_url,
        redis_url=redis_url,
        minio_endpoint="",
        worker_pool_size=1,
        log_level="INFO",
    )
    values.update(overrides)
    return Settings(**values)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process read exactly the settings of a test app."""
    names = {name.upper() for name in type(settings).model_fields}
    env = {key: value for key, value in os.environ.items() if key.upper() not in names}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is not None:
            env[name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    env["PYTHONUNBUFFERED"] = "1"
    return env
