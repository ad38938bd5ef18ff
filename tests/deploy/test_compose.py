"""docker-compose.prod.yml, as Compose v2 resolves it: networks, ports, health checks, restarts, limits, variables."""
from __future__ import annotations

import re

import yaml

from app.settings import PROJECT_ROOT, Settings
from tests.support.deploy import COMPOSE_FILE, REQUIRED_ENV, compose_config
from tests.test_settings import COMPOSE_ONLY_VARIABLES

DATA_SERVICES = {"postgres", "redis", "minio"}
LONG_RUNNING = {"postgres", "redis", "minio", "web", "worker", "playground", "nginx"}
ONE_SHOT = {"migrate", "certbot", "minio-init"}
APP_SERVICES = {"migrate", "web", "worker", "playground"}
# An exact release: 16.6-alpine, 7.4.1-alpine, v2.11.0, RELEASE.2024-11-07T00-52-20Z; never latest or a major alone.
EXACT_TAG = re.compile(r"^[\w./-]+:(v?\d+\.\d+(\.\d+)?(-[a-z0-9.]+)?|RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ)$")
GIB = 1024 ** 3
# The VM has 12 GB; the system, Docker and the page cache keep at least 3 of them.
MEMORY_BUDGET = 9 * GIB


def seconds(duration: str) -> int:
    """A compose duration such as 35s, 2m or 1m30s, in seconds."""
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(amount) * units[unit] for amount, unit in re.findall(r"(\d+)([hms])", duration))


def test_the_compose_file_is_valid_and_has_every_service(compose):
    assert set(compose["services"]) == LONG_RUNNING | ONE_SHOT


def test_a_missing_secret_stops_compose_with_its_name(tmp_path):
    env = {key: value for key, value in REQUIRED_ENV.items() if key != "METRICS_TOKEN"}
    result = compose_config(tmp_path, env)
    assert result.returncode != 0
    assert "METRICS_TOKEN" in result.stderr


def test_only_nginx_publishes_ports_and_only_80_and_443(compose):
    published = {name: service.get("ports") for name, service in compose["services"].items() if service.get("ports")}
    assert set(published) == {"nginx"}
    assert sorted((port["target"], port["published"]) for port in published["nginx"]) == [(80, "80"), (443, "443")]


def test_data_services_sit_on_the_internal_network_alone_and_only_nginx_is_public(compose):
    networks = {name: set(service["networks"]) for name, service in compose["services"].items()}
    assert compose["networks"]["internal"]["internal"] is True
    assert not compose["networks"]["public"].get("internal")
    assert {name for name, joined in networks.items() if "public" in joined} == {"nginx"}
    assert all(networks[name] == {"internal"} for name in DATA_SERVICES)
    # web and worker need a way out (Kaggle's API), through a network that publishes nothing.
    assert networks["web"] == networks["worker"] == {"internal", "outbound"}


def test_long_running_services_restart_and_one_shots_do_not(compose):
    restarts = {name: service.get("restart") for name, service in compose["services"].items()}
    assert {restarts[name] for name in LONG_RUNNING} == {"unless-stopped"}
    assert {restarts[name] for name in ONE_SHOT} == {"no"}


def test_every_long_running_service_has_a_health_check(compose):
    for name in LONG_RUNNING:
        check = compose["services"][name].get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), name
        assert seconds(check["interval"]) <= 30 and check["retries"] >= 3, name


def test_services_start_after_what_they_need_is_healthy(compose):
    services = compose["services"]
    for name in ("web", "worker"):
        conditions = {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}
        assert conditions == {**dict.fromkeys(DATA_SERVICES, "service_healthy"),
                              "migrate": "service_completed_successfully",
                              "minio-init": "service_completed_successfully"}, name
    assert services["nginx"]["depends_on"]["web"]["condition"] == "service_healthy"


def test_memory_limits_fit_a_12_gb_vm(compose):
    limits = {name: int(service["deploy"]["resources"]["limits"]["memory"])
              for name, service in compose["services"].items()}
    assert all(limit > 0 for limit in limits.values())
    assert sum(limits[name] for name in LONG_RUNNING) <= MEMORY_BUDGET


def test_data_lives_in_named_volumes_and_checkout_files_are_mounted_read_only(compose):
    for name in ("postgres", "redis", "minio", "worker"):
        volumes = compose["services"][name]["volumes"]
        assert any(volume["type"] == "volume" for volume in volumes), name
        assert all(volume["type"] == "volume" or volume.get("read_only") for volume in volumes), name


def test_web_runs_in_production_behind_one_trusted_proxy_with_a_metrics_token(compose):
    env = compose["services"]["web"]["environment"]
    assert env["STUDIO_ENV"] == "production"
    assert env["TRUSTED_PROXIES"] == "1"
    assert env["METRICS_TOKEN"] == REQUIRED_ENV["METRICS_TOKEN"]
    assert env["REDIS_URL"] == f"redis://:{REQUIRED_ENV['REDIS_PASSWORD']}@redis:6379/0"
    # nginx proxies to web:8000 (NGINX_UPSTREAM in nginx/Dockerfile); gunicorn binds 0.0.0.0:$PORT.
    assert env["PORT"] == "8000"
    assert "NGINX_UPSTREAM=web:8000" in (PROJECT_ROOT / "nginx/Dockerfile").read_text()


def test_the_production_environment_passes_every_safety_check(compose):
    env = {key.lower(): value for key, value in compose["services"]["web"]["environment"].items()
           if key.lower() in Settings.model_fields}
    settings = Settings(**env, secret_key="s" * 48, kaggle_username="alice", kaggle_key="key")
    assert settings.problems() == []
    assert settings.resolved_database_url.startswith("postgresql://studio:")


def test_stop_periods_let_requests_drain_and_steps_finish(compose):
    graceful = int(re.search(r"^graceful_timeout = (\d+)", (PROJECT_ROOT / "gunicorn.conf.py").read_text(),
                             re.MULTILINE).group(1))
    assert graceful == 30
    assert seconds(compose["services"]["web"]["stop_grace_period"]) > graceful
    assert seconds(compose["services"]["worker"]["stop_grace_period"]) >= 60


def test_every_variable_the_compose_file_uses_is_a_setting_or_documented():
    text = COMPOSE_FILE.read_text()
    raw = yaml.safe_load(text)
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (PROJECT_ROOT / ".env.example").read_text(), re.MULTILINE))
    settings = {name.upper() for name in Settings.model_fields}
    # $${NAME} is escaped: the container's shell expands it, not compose.
    interpolated = set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", text))
    assert interpolated <= documented, interpolated - documented
    app_variables = set(raw["x-app"]["environment"]) | set(raw["services"]["web"]["environment"]) - {"<<"}
    # The data services' secrets, blanked for the apps (env_file hands them all of .env).
    blanked = {name for name, value in raw["x-app"]["environment"].items() if value == ""} - {"DATABASE_URL"}
    assert blanked == {"DB_ADMIN_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "REDIS_PASSWORD"}
    assert app_variables - blanked <= settings, app_variables - blanked - settings
    assert interpolated >= COMPOSE_ONLY_VARIABLES


def test_every_image_pulled_is_pinned_to_an_exact_release(compose):
    pulled = {name: service["image"] for name, service in compose["services"].items() if "build" not in service}
    assert {"postgres", "redis", "minio", "minio-init", "certbot"} <= set(pulled)
    loose = {name: image for name, image in pulled.items() if not EXACT_TAG.match(image)}
    assert loose == {}


def test_the_app_uses_its_own_storage_user_created_by_a_one_shot_with_a_bucket_policy(compose):
    services = compose["services"]
    assert services["minio"]["environment"]["MINIO_ROOT_USER"] == REQUIRED_ENV["MINIO_ROOT_USER"]
    init = services["minio-init"]
    assert init["image"].startswith("minio/mc:") and init["restart"] == "no"
    assert init["depends_on"]["minio"]["condition"] == "service_healthy"
    script = " ".join(init.get("entrypoint") or []) + " " + " ".join(init.get("command") or [])
    for step in ("admin user add", "admin policy create", "admin policy attach", "s3:GetObject"):
        assert step in script, step
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert env["MINIO_USER"] == REQUIRED_ENV["MINIO_USER"] != REQUIRED_ENV["MINIO_ROOT_USER"], name


def test_the_app_connects_as_a_database_role_that_is_not_the_superuser(compose):
    services = compose["services"]
    postgres = services["postgres"]
    assert postgres["environment"]["POSTGRES_PASSWORD"] == REQUIRED_ENV["DB_ADMIN_PASSWORD"]
    assert postgres["environment"]["STUDIO_DB_USER"] == services["web"]["environment"]["DB_USER"]
    assert postgres["environment"]["POSTGRES_USER"] != postgres["environment"]["STUDIO_DB_USER"]
    mounts = {volume["target"]: volume for volume in postgres["volumes"]}
    assert mounts["/docker-entrypoint-initdb.d/10-studio-role.sh"]["source"].endswith("scripts/postgres_role.sh")
    assert mounts["/docker-entrypoint-initdb.d/10-studio-role.sh"].get("read_only") is True


def test_the_apps_never_receive_the_storage_or_database_superuser_secrets(compose):
    root_secrets = {REQUIRED_ENV["MINIO_ROOT_PASSWORD"], REQUIRED_ENV["DB_ADMIN_PASSWORD"]}
    for name in APP_SERVICES:
        values = {str(value) for value in compose["services"][name]["environment"].values()}
        assert not any(secret in value for secret in root_secrets for value in values), name


def test_no_secret_appears_on_any_command_line(compose):
    secrets = {value for key, value in REQUIRED_ENV.items() if "PASSWORD" in key or "TOKEN" in key}
    for name, service in compose["services"].items():
        lines = [*(service.get("entrypoint") or []), *(service.get("command") or []),
                 *(service.get("healthcheck", {}).get("test") or [])]
        assert not [secret for secret in secrets if any(secret in line for line in lines)], name
    redis = " ".join(compose["services"]["redis"]["command"])
    assert "requirepass" in redis and "--requirepass" not in redis
