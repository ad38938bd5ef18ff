"""Production refuses every insecure setting with its own message, listing them all at once."""
from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from app.factory import ConfigurationError, create_app
from app.settings import PROJECT_ROOT, Settings
from tests.support.accounts import PASSWORD, csrf_token_from
from tests.support.ports import free_port
from tests.support.settings import make_settings, settings_env
from tests.support.web import gunicorn_command

SAFE = dict(studio_env="production", secret_key="Vq3-" + "r4nd0m-" * 6, minio_endpoint="s3:9000",
            minio_user="studio", minio_password="a-long-storage-secret", training_backends="local,kaggle",
            kaggle_shared_account=True, kaggle_username="someone", kaggle_key="0123456789abcdef0123456789abcdef",
            allowed_origins="https://studio.example.com", force_https=True)
DATABASE = "postgresql://studio:a-long-db-secret@db:5432/studio"


def production_settings(tmp_path, **overrides) -> Settings:
    """Settings of a safe production deployment, with overrides."""
    values = {"database_url": DATABASE, "redis_url": "redis://:a-long-redis-secret@redis:6379/0", **SAFE, **overrides}
    return make_settings(tmp_path, values.pop("database_url"), values.pop("redis_url"), **values)


def test_the_safe_baseline_has_no_problem(tmp_path):
    assert production_settings(tmp_path).problems() == []


@pytest.mark.parametrize("overrides, variable", [
    ({"secret_key": ""}, "SECRET_KEY"),
    ({"secret_key": "dev-only-insecure-secret-key"}, "SECRET_KEY"),
    ({"secret_key": "short-but-random-9f8e7d"}, "SECRET_KEY"),
    ({"database_url": "postgresql://studio:postgres@db/studio"}, "DB_PASSWORD"),
    ({"database_url": "postgresql://studio@db/studio"}, "DB_PASSWORD"),
    ({"minio_password": "minioadmin"}, "MINIO_PASSWORD"),
    ({"redis_url": "redis://:changeme@redis:6379/0"}, "REDIS_URL"),
    ({"allowed_origins": "*"}, "ALLOWED_ORIGINS"),
    ({"allowed_origins": "https://studio.example.com, *"}, "ALLOWED_ORIGINS"),
    ({"flask_debug": True}, "FLASK_DEBUG"),
    ({"kaggle_key": ""}, "KAGGLE_KEY"),
    ({"kaggle_username": "", "kaggle_key": ""}, "KAGGLE_KEY"),
    ({"rate_limits_enabled": False}, "RATE_LIMITS_ENABLED"),
    ({"force_https": False}, "FORCE_HTTPS"),
])
def test_each_insecure_setting_is_refused_with_its_own_message(tmp_path, overrides, variable):
    settings = production_settings(tmp_path, **overrides)
    problems = settings.problems()
    assert [problem.split(":")[0] for problem in problems] == [variable]
    with pytest.raises(ConfigurationError) as refused:
        create_app(settings)
    assert problems[0] in str(refused.value)


def test_kaggle_credentials_may_be_a_single_api_token(tmp_path):
    assert production_settings(tmp_path, kaggle_username="", kaggle_key="", kaggle_api_token="KGAT_x").problems() == []


def test_kaggle_needs_no_server_credentials_when_every_user_brings_their_own(tmp_path):
    settings = production_settings(tmp_path, kaggle_shared_account=False, kaggle_username="", kaggle_key="")
    assert settings.problems() == []


def test_plain_http_in_production_needs_an_explicit_opt_in(tmp_path):
    assert production_settings(tmp_path, force_https=False, allow_insecure_http=True).problems() == []


PLAIN_HTTP = {"force_https": False, "allow_insecure_http": True}


@pytest.mark.parametrize("overrides, secure", [({}, True), (PLAIN_HTTP, False)])
def test_production_session_and_device_cookies_are_secure_behind_https(tmp_path, postgres_database_url, redis_url,
                                                                         make_user, overrides, secure):
    values = {**SAFE, "minio_endpoint": "", "training_backends": "local", **overrides}
    settings = make_settings(tmp_path, postgres_database_url.replace("postgres@", "postgres:unused-Xk29@"),
                             redis_url, **values)
    app = create_app(settings)
    app.config.update(TESTING=True)
    account = make_user()
    client = app.test_client()
    token = csrf_token_from(client.get("/login", base_url="https://localhost").get_data(as_text=True))
    form = {"email": account.email, "password": PASSWORD, "csrf_token": token}
    # Over HTTPS, Flask-WTF also checks that the form came from this site.
    response = client.post("/login", data=form, base_url="https://localhost",
                           headers={"Referer": "https://localhost/login"})
    assert response.status_code == 302
    session = client.get_cookie("studio_session", domain="localhost")
    device = client.get_cookie("studio_device", domain="localhost", path="/login")
    assert session.secure is secure and device.secure is secure
    assert session.http_only and device.http_only


def test_every_problem_is_listed_at_once(tmp_path):
    settings = production_settings(tmp_path, secret_key="x", allowed_origins="*", flask_debug=True,
                                   minio_password="", kaggle_key="")
    assert [p.split(":")[0] for p in settings.problems()] == [
        "SECRET_KEY", "MINIO_PASSWORD", "KAGGLE_KEY", "ALLOWED_ORIGINS", "FLASK_DEBUG"]


def test_development_tolerates_what_production_refuses(tmp_path):
    settings = production_settings(tmp_path, studio_env="development", secret_key="x", allowed_origins="*")
    assert settings.problems() and create_app(settings).name == "app"


@pytest.mark.parametrize("variable, value", [("ALLOWED_ORIGINS", "https://studio.example.com/"),
                                              ("ALLOWED_ORIGINS", "studio.example.com"),
                                              ("RATE_LIMIT_GLOBAL", "many"),
                                              ("TRAINING_BACKENDS", "local,colab")])
def test_malformed_values_are_refused_in_any_mode_naming_the_variable(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert refused.value.errors()[0]["loc"] == (variable.lower(),)


def insecure_production_env(tmp_path) -> dict[str, str]:
    """The environment of a production process with three problems."""
    settings = make_settings(tmp_path, "postgresql://studio:postgres@127.0.0.1:1/x", "redis://127.0.0.1:1/0")
    return settings_env(settings) | {"STUDIO_ENV": "production", "SECRET_KEY": "weak", "ALLOWED_ORIGINS": "*"}


def test_check_config_prints_the_report_in_production_without_a_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "check-config"], cwd=PROJECT_ROOT,
                            env=insecure_production_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    for variable in ("SECRET_KEY", "DB_PASSWORD", "ALLOWED_ORIGINS"):
        assert f"- {variable}:" in result.stderr
    assert "Traceback" not in result.stderr


def test_gunicorn_refuses_to_start_and_lists_every_problem(tmp_path):
    result = subprocess.run(gunicorn_command(free_port()), cwd=PROJECT_ROOT, env=insecure_production_env(tmp_path),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert all(f"- {v}:" in result.stderr for v in ("SECRET_KEY", "DB_PASSWORD", "ALLOWED_ORIGINS"))
    assert "Booting worker" not in result.stderr
