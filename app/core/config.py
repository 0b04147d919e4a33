"""Application settings: one validated `Settings` object, read from the environment and `.env`."""

from __future__ import annotations

import json
import os
import secrets
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from loguru import logger
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Values that appear in examples and tutorials; a production key must never be one of them.
PLACEHOLDER_SECRETS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "secret",
        "secret-key",
        "your-secret-key",
        "your-secret-key-here",
        "please-change-me",
        "replace-me-with-a-long-random-string",
        "development-secret-key",
    }
)
MIN_SECRET_LENGTH = 32


class Environment(StrEnum):
    """Where the service runs; production turns on the strict checks."""

    development = "development"
    test = "test"
    production = "production"


class LogFormat(StrEnum):
    """How log lines are written."""

    structured = "structured"
    simple = "simple"


class RegistrationMode(StrEnum):
    """Who may create an account through `POST /auth/register`."""

    open = "open"  # anyone; the account works at once
    approval = "approval"  # anyone; the account waits until an admin activates it
    closed = "closed"  # nobody (operators use scripts/startup.py --user)


class ConfigError(RuntimeError):
    """The configuration cannot be used; the message says what to fix."""


# uvicorn's WebSocket options (`python3 main.py` and the gunicorn worker): a ping every 20 s,
# the socket closed (1011) when its pong is 20 s late; a client frame of at most 1 MiB
# (app/api/ws/frames.py refuses frames past 256 KiB with an `error` frame first); no
# permessage-deflate: its two zlib streams cost ~50 KiB per socket and CPU on every token
# (README, Decisions)
WS_SERVER_OPTIONS: dict[str, float | int | bool] = {
    "ws_ping_interval": 20.0,
    "ws_ping_timeout": 20.0,
    "ws_max_size": 1024 * 1024,
    "ws_per_message_deflate": False,
}


class Settings(BaseSettings):
    """Every setting of CONFIG.md, typed and validated at start-up."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    environment: Environment = Environment.development
    # empty = the embedded SQLite file in DATA_DIR (filled in by `_default_database`)
    database_url: str = ""
    db_auto_migrate: bool = True
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=20, ge=0, le=500)
    # connect, pool checkout and statement timeout: a dead or frozen database is a 503 within it
    db_timeout_seconds: float = Field(default=5, gt=0, le=300)
    # how long a turn write that failed (database unavailable) is retried before it is spooled
    turn_write_retry_seconds: float = Field(default=600, ge=0, le=7 * 24 * 3600)
    secret_key: SecretStr | None = None
    access_token_expire_minutes: int = Field(default=60, ge=1, le=60 * 24)
    refresh_token_expire_days: int = Field(default=30, ge=1, le=365)
    bcrypt_rounds: int = Field(default=12, ge=4, le=16)
    backend_cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.structured
    log_dir: Path = Path("logs")
    log_rotation: str = "20 MB"
    log_retention: str = "14 days"
    log_compression: str = "gz"
    config_dir: Path = Path("config")
    data_dir: Path = Path("data")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default_factory=lambda: min(2 * (os.cpu_count() or 1) + 1, 9), ge=1)
    redis_url: str | None = None
    metrics_token: SecretStr | None = None
    rate_limit_enabled: bool = True
    rate_limit_login_account: str = "5/minute"
    rate_limit_login_ip: str = "30/minute"
    rate_limit_register: str = "10/hour"
    rate_limit_refresh: str = "60/minute"
    rate_limit_chat: str = "30/minute"
    rate_limit_api_key: str = "120/minute"  # /v1/* requests per API key (or user)
    max_concurrent_generations: int = Field(default=3, ge=1, le=10000)
    max_generation_seconds: float = Field(default=600, gt=0)
    sse_ping_seconds: float = Field(default=15, gt=0, le=15)
    generation_retention_seconds: float = Field(default=300, ge=1)
    # GET /ws: what a socket may hold unsent, and how long it may stay full before the
    # socket is dropped (close 1013; its answers go on)
    ws_send_buffer_bytes: int = Field(default=256 * 1024, ge=1024, le=64 * 1024 * 1024)
    ws_stall_seconds: float = Field(default=10, gt=0, le=300)
    shutdown_grace_seconds: float = Field(default=30, ge=0)
    max_tool_rounds: int = Field(default=8, ge=1, le=50)
    tool_approval_timeout_seconds: float = Field(default=300, gt=0, le=86400)
    max_import_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    registration_mode: RegistrationMode = RegistrationMode.open
    audit_retention_days: int = Field(default=365, ge=1, le=36500)
    # outbound fetches (app adapters, URL tool arguments): see app/services/urls
    url_allowlist: Annotated[list[str], NoDecode] = Field(default_factory=list)
    fetch_timeout_seconds: float = Field(default=20, gt=0, le=600)
    fetch_connect_timeout_seconds: float = Field(default=5, gt=0, le=120)
    fetch_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    fetch_max_redirects: int = Field(default=3, ge=0, le=10)
    # uploads (app/services/files): `file://<dir>` or `s3://bucket/prefix`; empty = DATA_DIR/files
    file_storage_url: str = ""
    # an S3-compatible endpoint may carry credentials in its URL: a secret like the keys
    s3_endpoint_url: SecretStr | None = None
    aws_access_key_id: SecretStr | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_region: str = "us-east-1"
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1024, le=2 * 1024**3)
    user_storage_quota_bytes: int = Field(default=1024**3, ge=0)
    # default per-user quotas (None: unlimited); an admin's per-user value overrides them
    quota_tokens_per_day: int | None = Field(default=None, ge=0, le=10**12)
    quota_cost_per_month: float | None = Field(default=None, ge=0, le=10**9, allow_inf_nan=False)

    @field_validator("backend_cors_origins", "url_allowlist", mode="before")
    @classmethod
    def _parse_origins(cls, value: Any) -> Any:
        """Accept a JSON list or a comma-separated string."""
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return []
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("backend_cors_origins")
    @classmethod
    def _strip_slashes(cls, value: list[str]) -> list[str]:
        """Browsers send origins without a trailing slash; compare like with like."""
        return [origin.rstrip("/") for origin in value]

    @field_validator(
        "redis_url",
        "metrics_token",
        "s3_endpoint_url",
        "aws_access_key_id",
        "aws_secret_access_key",
        "quota_tokens_per_day",
        "quota_cost_per_month",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        """An empty variable in `.env` means 'not set'."""
        return None if value == "" else value

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        """Without DATABASE_URL, the SQLite file lives in DATA_DIR (default `./data/vektor.db`)."""
        if not self.database_url.strip():
            path = self.data_dir / "vektor.db"
            # three slashes then the path: `./data/...` relative, `/srv/...` absolute (four)
            where = path.as_posix() if path.is_absolute() else f"./{path.as_posix()}"
            self.database_url = f"sqlite+aiosqlite:///{where}"
        return self

    @model_validator(mode="after")
    def _default_file_storage(self) -> Settings:
        """Without FILE_STORAGE_URL, uploads live in DATA_DIR/files; anything else must be
        `file://` or `s3://bucket[/prefix]`."""
        url = self.file_storage_url.strip()
        if not url:
            self.file_storage_url = f"file://{(self.data_dir / 'files').absolute().as_posix()}"
        elif not url.startswith(("file://", "s3://")) or url in ("file://", "s3://"):
            raise ConfigError(
                "FILE_STORAGE_URL must be file:///absolute/dir or s3://bucket/prefix "
                f"(got a {url.partition(':')[0] or 'schemeless'} URL)"
            )
        return self

    @model_validator(mode="after")
    def _one_worker_without_redis(self) -> Settings:
        """Unless WORKERS is set, run one worker without Redis (several need shared state)."""
        if "workers" not in self.model_fields_set and not self.redis_url:
            self.workers = 1
        return self

    @model_validator(mode="after")
    def _check_production(self) -> Settings:
        """Refuse unsafe production configurations with a message that says why."""
        if self.environment is not Environment.production:
            return self
        key = self.secret_key.get_secret_value() if self.secret_key else ""
        if not key:
            raise ConfigError(
                "SECRET_KEY is not set: ENVIRONMENT=production needs a random key of at least "
                f"{MIN_SECRET_LENGTH} characters (scripts/init_config.py writes one into .env)"
            )
        if len(key) < MIN_SECRET_LENGTH or key.lower() in PLACEHOLDER_SECRETS:
            raise ConfigError(
                "SECRET_KEY is too weak for ENVIRONMENT=production: use a random value of at least "
                f"{MIN_SECRET_LENGTH} characters, not a placeholder "
                "(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        if "*" in self.backend_cors_origins:
            raise ConfigError(
                "BACKEND_CORS_ORIGINS contains '*': with credentials this lets any site act as "
                "the user; list the exact origins instead"
            )
        if self.bcrypt_rounds < 12:
            raise ConfigError("BCRYPT_ROUNDS must be at least 12 in production")
        return self

    @property
    def is_sqlite(self) -> bool:
        """True when the database is the embedded SQLite file."""
        return self.database_url.startswith("sqlite")

    def signing_key(self) -> str:
        """The JWT signing key; development keeps a generated one in `DATA_DIR/secret_key`."""
        if self.secret_key and self.secret_key.get_secret_value():
            return self.secret_key.get_secret_value()
        return _development_key(self.data_dir)


@lru_cache(maxsize=8)
def _development_key(data_dir: Path) -> str:
    """Read or create the development signing key (mode 0600), warning that it is one."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key)
    logger.warning(
        "SECRET_KEY is not set: generated a development key in {}; set SECRET_KEY in production",
        path,
    )
    return key


def check_workers(workers: int, redis_url: str | None) -> None:
    """Refuse several worker processes without Redis (their in-process state would diverge)."""
    if workers > 1 and not redis_url:
        raise ConfigError(
            f"{workers} workers without REDIS_URL: without Redis, re-attach, cancel, approvals "
            "and rate limits would break across workers (each worker keeps its own state, so a "
            "request that lands on another worker does not find it). Set "
            "REDIS_URL=redis://host:6379/0, or run one worker (WORKERS=1 or --workers 1)"
        )


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; tests build their own `Settings`)."""
    return Settings()
