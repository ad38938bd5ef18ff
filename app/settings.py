"""One typed settings object, read from the environment, that can list every problem it finds."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.jobs import backends
from app.secrets_at_rest import key_problem

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Only good enough for a laptop: production validation refuses it.
DEV_SECRET_KEY = "dev-only-insecure-secret-key"  # noqa: S105 (public on purpose; refused in production)

# Passwords that ship in examples and images; production refuses them.
DEFAULT_PASSWORDS = {"", "changeme", "change-me", "password", "postgres", "studio", "minioadmin", "secret"}

MIN_SECRET_KEY_LENGTH = 32
MIN_METRICS_TOKEN_LENGTH = 24

ORIGIN_PATTERN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$")


class Settings(BaseSettings):
    """Every setting of the Studio; each field is the lower-case name of its environment variable."""

    # Empty variables (as copied from .env.example) mean "use the default".
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True, env_ignore_empty=True)

    studio_env: Literal["development", "production", "test"] = "development"
    secret_key: str = DEV_SECRET_KEY
    data_dir: Path = PROJECT_ROOT / "data"
    port: int = Field(5000, ge=1, le=65535)
    web_concurrency: int = Field(0, ge=0, le=64)
    web_threads: int = Field(4, ge=1, le=64)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "text"] = "auto"
    metrics_token: str = ""
    # Read by gunicorn.conf.py before the app is imported (prometheus_client needs it first); typed here.
    prometheus_multiproc_dir: Path | None = None
    max_request_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    # The pages' language when neither the user nor the browser names one the Studio has (app/i18n.py).
    default_locale: Literal["en", "es"] = "en"

    database_url: str = ""
    db_host: str = ""
    db_port: int = Field(5432, ge=1, le=65535)
    db_name: str = "finetune_studio"
    db_user: str = "studio"
    db_password: str = ""
    db_pool_size: int = Field(10, ge=1, le=200)
    db_pool_timeout: int = Field(10, ge=1)

    redis_url: str = "redis://127.0.0.1:6379/0"

    minio_endpoint: str = ""
    minio_user: str = ""
    minio_password: str = ""
    minio_bucket: str = Field("finetune-studio", min_length=3, max_length=63)
    minio_secure: bool = False
    minio_region: str = ""
    storage_dir: Path | None = None

    worker_pool_size: int = Field(2, ge=1, le=64)
    worker_queues: str = "default,training-local"

    admin_email: str = "admin@studio.local"

    force_https: bool = False
    allow_insecure_http: bool = False
    trusted_proxies: int = Field(0, ge=0, le=10)
    allowed_origins: str = ""
    rate_limits_enabled: bool = True
    rate_limit_global: str = "100/minute"
    rate_limit_expensive: str = "10/minute"
    rate_limit_polling: str = "300/minute"
    rate_limit_probes: str = "120/minute"
    flask_debug: bool = False

    training_backends: str = "local"
    kaggle_username: str = ""
    kaggle_key: str = ""
    kaggle_api_token: str = ""
    kaggle_api_url: str = "https://www.kaggle.com/api/v1"
    kaggle_max_concurrent: int = Field(2, ge=1, le=10)
    kaggle_config_dir: Path | None = None
    # Whether users without a linked Kaggle account may train on the server's (KAGGLE_USERNAME/KAGGLE_KEY).
    kaggle_shared_account: bool = False
    # Kaggle ends a GPU session after 12 hours; a run stops this long before, to save its checkpoint as output.
    kaggle_session_seconds: int = Field(12 * 3600, ge=60)
    kaggle_session_margin_seconds: int = Field(20 * 60, ge=0)
    # Fernet keys for secrets at rest, newest first (app/secrets_at_rest.py); empty: derived from SECRET_KEY.
    secrets_keys: str = ""

    local_training_timeout: int = Field(24 * 3600, ge=60)
    job_lease_seconds: int = Field(60, ge=2)
    reconcile_interval: int = Field(60, ge=5)

    dataset_max_bytes: int = Field(512 * 1024 * 1024, ge=1024)
    dataset_max_record_bytes: int = Field(1024 * 1024, ge=1024)
    dataset_inline_validation_bytes: int = Field(8 * 1024 * 1024, ge=0)

    quota_max_active_jobs: int = Field(5, ge=0)
    quota_max_stored_bytes: int = Field(10 * 1024 ** 3, ge=0)
    quota_max_uploads_per_day: int = Field(100, ge=0)

    # Lists count their rows up to this many; beyond, pages say "more than N" instead of scanning them all.
    list_count_limit: int = Field(1000, ge=1)
    # A job keeps this many log lines as events; later ones go to compressed log artifacts (app/jobs/log_overflow.py).
    job_log_event_cap: int = Field(20_000, ge=0)
    # Webhooks (app/webhooks): the key their secrets are encrypted with at rest (a Fernet key; empty derives one
    # from SECRET_KEY), seconds between attempts, failures in a row that disable an endpoint, private addresses.
    webhooks_encryption_key: str = ""
    webhooks_retry_schedule: str = "10,60,300,1800,7200,18000,36000"
    webhooks_disable_after_failures: int = Field(50, ge=1)
    webhooks_timeout_seconds: float = Field(10.0, gt=0, le=60)
    webhooks_allow_private_addresses: bool = False

    sweep_grace_seconds: int = Field(24 * 3600, ge=0)
    sweep_kaggle_datasets: bool = False

    # The playground (app/playground): generation on its own queue and worker (`python -m workers --playground`).
    playground_max_tokens: int = Field(512, ge=1)
    playground_rate_per_minute: int = Field(20, ge=1)
    playground_queue_max: int = Field(16, ge=1)
    playground_warm_seconds: int = Field(600, ge=0)
    playground_memory_gb: float = Field(0.0, ge=0)  # 0: whatever the worker's machine has free

    @property
    def webhook_retry_delays(self) -> list[float]:
        """Seconds to wait before each retry of a failed webhook delivery."""
        return [float(delay) for delay in _split_list(self.webhooks_retry_schedule)]

    @field_validator("webhooks_retry_schedule")
    @classmethod
    def _check_retry_schedule(cls, value: str) -> str:
        """A comma-separated list of non-negative numbers of seconds."""
        try:
            delays = [float(delay) for delay in _split_list(value)]
        except ValueError:
            delays = [-1.0]
        if any(delay < 0 for delay in delays):
            raise ValueError("use comma-separated seconds, e.g. 10,60,300")
        return value

    @property
    def is_production(self) -> bool:
        """Whether the strict production checks apply."""
        return self.studio_env == "production"

    @property
    def resolved_database_url(self) -> str:
        """DATABASE_URL, else one built from DB_*, else the SQLite file under the data folder."""
        if self.database_url:
            return self.database_url
        if self.db_host:
            credentials = f"{quote(self.db_user, safe='')}:{quote(self.db_password, safe='')}"
            return f"postgresql://{credentials}@{self.db_host}:{self.db_port}/{self.db_name}"
        return f"sqlite:///{self.data_dir / 'studio.db'}"

    @property
    def uses_s3(self) -> bool:
        """Whether objects go to an S3 server rather than the local folder."""
        return bool(self.minio_endpoint)

    @property
    def resolved_storage_dir(self) -> Path:
        """The folder of the local object store."""
        return self.storage_dir or self.data_dir / "objects"

    @property
    def queue_names(self) -> list[str]:
        """The RQ queues a worker listens on, in priority order."""
        return [name.strip() for name in self.worker_queues.split(",") if name.strip()]

    @property
    def json_logs(self) -> bool:
        """Whether log lines are JSON (LOG_FORMAT; auto: JSON everywhere but development)."""
        return self.log_format == "json" or (self.log_format == "auto" and self.studio_env != "development")

    @property
    def origin_list(self) -> list[str]:
        """The origins whose pages may call the API (CORS)."""
        return _split_list(self.allowed_origins)

    @property
    def backend_names(self) -> list[str]:
        """The training backends users may choose."""
        return _split_list(self.training_backends)

    @property
    def has_kaggle_credentials(self) -> bool:
        """Whether the Kaggle client can authenticate."""
        return bool(self.kaggle_api_token or (self.kaggle_username and self.kaggle_key))

    @field_validator("rate_limit_global", "rate_limit_expensive", "rate_limit_polling", "rate_limit_probes")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        """A limit Flask-Limiter understands, such as 100/minute or "10 per second"."""
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate limit such as '100/minute'") from None
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _check_origins(cls, value: str) -> str:
        """Each entry is * or an origin: scheme://host[:port], without a path or trailing slash."""
        bad = [origin for origin in _split_list(value) if origin != "*" and not ORIGIN_PATTERN.match(origin)]
        if bad:
            raise ValueError(f"not origins such as https://studio.example.com: {', '.join(bad)}")
        return value

    @field_validator("kaggle_api_url")
    @classmethod
    def _check_kaggle_url(cls, value: str) -> str:
        """An http(s) URL, nothing else."""
        if not value.startswith(("https://", "http://")):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    @field_validator("secrets_keys")
    @classmethod
    def _check_secrets_keys(cls, value: str) -> str:
        """Every entry a Fernet key."""
        for index, key in enumerate(_split_list(value), start=1):
            problem = key_problem(key)
            if problem:
                raise ValueError(f"key {index} is {problem}")
        return value

    @field_validator("training_backends")
    @classmethod
    def _check_backends(cls, value: str) -> str:
        """Only backends the Studio has."""
        unknown = set(_split_list(value)) - set(backends.names())
        if unknown or not _split_list(value):
            raise ValueError(f"choose among {', '.join(backends.names())}; got {value!r}")
        return value

    def problems(self) -> list[str]:
        """Every reason this configuration is unsafe for production, each naming its variable."""
        return self._credential_problems() + self._exposure_problems()

    def _credential_problems(self) -> list[str]:
        """Secrets that are missing, weak or well-known."""
        found = []
        if self.secret_key == DEV_SECRET_KEY or len(self.secret_key) < MIN_SECRET_KEY_LENGTH:
            found.append(f"SECRET_KEY: set a random value of at least {MIN_SECRET_KEY_LENGTH} characters")
        if self.resolved_database_url.startswith("postgres") and self._database_password() in DEFAULT_PASSWORDS:
            found.append("DB_PASSWORD: the database password is empty or a well-known default")
        if self.uses_s3 and self.minio_password in DEFAULT_PASSWORDS:
            found.append("MINIO_PASSWORD: the object-storage password is empty or a well-known default")
        if (urlsplit(self.redis_url).password or "") in DEFAULT_PASSWORDS - {""}:
            found.append("REDIS_URL: the Redis password is a well-known default")
        for name in self.backend_names:
            found += backends.get(name).settings_problems(self)
        return found

    def _exposure_problems(self) -> list[str]:
        """Settings that open the Studio to other sites, to abuse or to a debugger."""
        found = []
        if "*" in self.origin_list:
            found.append("ALLOWED_ORIGINS: '*' lets every website call the API; list your own origins")
        if self.flask_debug:
            found.append("FLASK_DEBUG: debug mode must be off in production (its debugger runs any code)")
        if not self.rate_limits_enabled:
            found.append("RATE_LIMITS_ENABLED: rate limits must stay on in production")
        if not self.force_https and not self.allow_insecure_http:
            found.append("FORCE_HTTPS: production serves sessions over HTTPS only (Secure cookie, HSTS); set it "
                         "to true behind TLS, or ALLOW_INSECURE_HTTP=true to run on plain HTTP knowingly")
        if self.metrics_token and len(self.metrics_token) < MIN_METRICS_TOKEN_LENGTH:
            found.append(f"METRICS_TOKEN: use at least {MIN_METRICS_TOKEN_LENGTH} random characters")
        if not self.queue_names:
            found.append("WORKER_QUEUES: name at least one queue")
        return found

    def _database_password(self) -> str:
        """The password in the effective database URL."""
        from playhouse.db_url import parse

        return str(parse(self.resolved_database_url).get("password") or "")


def _split_list(value: str) -> list[str]:
    """The non-empty items of a comma-separated setting."""
    return [item.strip() for item in value.split(",") if item.strip()]
