"""Settings: read from the environment, every problem listed, every variable documented."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest
from pydantic import ValidationError

from app.factory import ConfigurationError, create_app
from app.settings import PROJECT_ROOT, Settings
from tests.support.settings import make_settings, settings_env


def test_settings_come_from_environment_variables(monkeypatch):
    monkeypatch.setenv("WORKER_POOL_SIZE", "7")
    monkeypatch.setenv("MINIO_SECURE", "true")
    settings = Settings()
    assert settings.worker_pool_size == 7 and settings.minio_secure is True


def test_bad_values_are_all_reported_at_once_with_their_variable(monkeypatch):
    monkeypatch.setenv("WORKER_POOL_SIZE", "many")
    monkeypatch.setenv("PORT", "70000")
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert {error["loc"][0] for error in caught.value.errors()} == {"worker_pool_size", "port"}


def test_database_url_defaults_to_sqlite_under_the_data_folder(tmp_path):
    settings = Settings(data_dir=tmp_path, database_url="", db_host="")
    assert settings.resolved_database_url == f"sqlite:///{tmp_path}/studio.db"


def test_database_url_is_built_from_parts_with_escaped_password():
    settings = Settings(database_url="", db_host="db", db_user="studio", db_password="p@ss:/word", db_name="fs")
    assert settings.resolved_database_url == "postgresql://studio:p%40ss%3A%2Fword@db:5432/fs"


def test_production_lists_every_problem_and_refuses_to_start(tmp_path):
    settings = make_settings(tmp_path, "postgresql://studio:changeme@db/x", "redis://127.0.0.1:6379/0",
                             studio_env="production", secret_key="short", minio_endpoint="s3:9000", force_https=True,
                             minio_password="minioadmin")
    problems = settings.problems()
    assert [p.split(":")[0] for p in problems] == ["SECRET_KEY", "DB_PASSWORD", "MINIO_PASSWORD"]
    with pytest.raises(ConfigurationError) as caught:
        create_app(settings)
    assert all(problem in str(caught.value) for problem in problems)


def test_a_safe_production_configuration_starts(tmp_path):
    settings = make_settings(tmp_path, "postgresql://studio:Xk29-long-random@db/x", "redis://r:6379/0",
                             studio_env="production", secret_key="k" * 48, force_https=True)
    assert settings.problems() == []
    assert create_app(settings).name == "app"


def test_check_config_command_prints_the_report(tmp_path):
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path}/s.db", "redis://127.0.0.1:6379/0", secret_key="weak")
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "check-config"], cwd=PROJECT_ROOT,
                            env=settings_env(settings), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "SECRET_KEY" in result.stderr


# Variables that only docker-compose.prod.yml reads.
COMPOSE_ONLY_VARIABLES = {"REDIS_PASSWORD", "DOMAIN", "DB_ADMIN_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD",
                          "PLAYGROUND_TORCH_INDEX_URL"}


def test_every_setting_is_documented_in_env_example():
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (PROJECT_ROOT / ".env.example").read_text(), re.MULTILINE))
    assert documented == {name.upper() for name in Settings.model_fields} | COMPOSE_ONLY_VARIABLES


def test_empty_variables_mean_the_default(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "")
    monkeypatch.setenv("STORAGE_DIR", "")
    settings = Settings()
    assert settings.secret_key and settings.storage_dir is None
