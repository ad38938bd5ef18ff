"""docker-compose.prod.yml, as Compose v2 resolves it: networks, ports, health checks, restarts, limits, variables."""
from __future__ import annotations

import re

import yaml

from app.settings import PROJECT_ROOT, Settings
from tests.support.deploy import COMPOSE_FILE, REQUIRED_ENV, compose_config
from tests.test_settings import COMPOSE_ONLY_VARIABLES

DATA_SERVICES = {"postgres", "redis", "minio"}
LONG_RUNNING = {"postgres", "redis", "minio", "web", "worker", "nginx"}
ONE_SHOT = {"migrate", "certbot"}
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
                              "migrate": "service_completed_successfully"}, name
    assert services["nginx"]["depends_on"]["web"]["condition"] == "service_healthy"


def test_memory_limits_fit_a_12_gb_vm(compose):
    limits = {name: int(service["deploy"]["resources"]["limits"]["memory"])
              for name, service in compose["services"].items()}
    assert all(limit > 0 for limit in limits.values())
    assert sum(limits[name] for name in LONG_RUNNING) <= MEMORY_BUDGET


def test_data_lives_in_named_volumes(compose):
    for name in ("postgres", "redis", "minio", "worker"):
        volumes = compose["services"][name]["volumes"]
        assert volumes and all(volume["type"] == "volume" for volume in volumes), name


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
    assert app_variables <= settings, app_variables - settings
    assert interpolated >= COMPOSE_ONLY_VARIABLES
