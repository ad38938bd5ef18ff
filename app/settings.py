"""One typed settings object, read from the environment, that can list every problem it finds."""
from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import quote

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Only good enough for a laptop: production validation refuses it.
DEV_SECRET_KEY = "dev-only-insecure-secret-key"  # noqa: S105 (public on purpose; refused in production)

# Passwords that ship in examples and images; production refuses them.
DEFAULT_PASSWORDS = {"", "changeme", "change-me", "password", "postgres", "studio", "minioadmin", "secret"}

MIN_SECRET_KEY_LENGTH = 32


class Settings(BaseSettings):
    """Every setting of the Studio; each field is the lower-case name of its environment variable."""

    # Empty variables (as copied from .env.example) mean "use the default".
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True, env_ignore_empty=True)

    studio_env: Literal["development", "production", "test"] = "development"
    secret_key: str = DEV_SECRET_KEY
    data_dir: Path = PROJECT_ROOT / "data"
    port: int = Field(5000, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    max_request_bytes: int = Field(10 * 1024 * 1024, ge=1024)

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

    def problems(self) -> list[str]:
        """Every reason this configuration is unsafe for production, each naming its variable."""
        found = []
        if self.secret_key == DEV_SECRET_KEY or len(self.secret_key) < MIN_SECRET_KEY_LENGTH:
            found.append(f"SECRET_KEY: set a random value of at least {MIN_SECRET_KEY_LENGTH} characters")
        if self.resolved_database_url.startswith("postgres") and self._database_password() in DEFAULT_PASSWORDS:
            found.append("DB_PASSWORD: the database password is empty or a well-known default")
        if self.uses_s3 and self.minio_password in DEFAULT_PASSWORDS:
            found.append("MINIO_PASSWORD: the object-storage password is empty or a well-known default")
        if not self.queue_names:
            found.append("WORKER_QUEUES: name at least one queue")
        return found

    def _database_password(self) -> str:
        """The password in the effective database URL."""
        from playhouse.db_url import parse

        return str(parse(self.resolved_database_url).get("password") or "")
