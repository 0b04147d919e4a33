"""Settings: production safety checks, the development key, CORS parsing, bcrypt cost."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest

from app.core import config as config_module
from app.core.config import ConfigError, Settings
from app.core.security import PasswordHasher

STRONG_KEY = "k" * 20 + "Zq8-xW3_pL0vN5mR7tY2"  # 40 characters, not a placeholder
ENV_KEYS = (
    "ENVIRONMENT",
    "SECRET_KEY",
    "BACKEND_CORS_ORIGINS",
    "BCRYPT_ROUNDS",
    "DATA_DIR",
    "DATABASE_URL",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No setting leaks in from the real environment; the key cache starts empty."""
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    config_module._development_key.cache_clear()
    yield
    config_module._development_key.cache_clear()


def build(**values: Any) -> Settings:
    """Settings from keyword values only (no `.env`)."""
    return Settings(_env_file=None, **values)


# --- production refuses unsafe configurations ---------------------------------------------


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        (None, "SECRET_KEY is not set"),
        ("", "SECRET_KEY is not set"),
        ("too-short-but-random-8f3k", "too weak"),
        ("replace-me-with-a-long-random-string", "placeholder"),
        ("REPLACE-ME-WITH-A-LONG-RANDOM-STRING", "placeholder"),
    ],
)
def test_production_refuses_a_weak_secret_key(secret: str | None, reason: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        build(environment="production", secret_key=secret)
    message = str(excinfo.value)
    assert reason in message
    assert "SECRET_KEY" in message
    if secret:
        assert secret not in message  # the message never echoes the key


def test_production_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    with pytest.raises(ConfigError, match="SECRET_KEY is not set"):
        build()
    monkeypatch.setenv("SECRET_KEY", STRONG_KEY)
    assert build().signing_key() == STRONG_KEY


@pytest.mark.parametrize("origins", ['["*"]', "*", "https://app.example.com,*"])
def test_production_refuses_wildcard_cors(monkeypatch: pytest.MonkeyPatch, origins: str) -> None:
    monkeypatch.setenv("BACKEND_CORS_ORIGINS", origins)
    with pytest.raises(ConfigError, match=r"BACKEND_CORS_ORIGINS contains '\*'"):
        build(environment="production", secret_key=STRONG_KEY)
    # the same origins are allowed while developing
    assert "*" in build(environment="development").backend_cors_origins


def test_production_refuses_cheap_bcrypt() -> None:
    with pytest.raises(ConfigError, match="BCRYPT_ROUNDS"):
        build(environment="production", secret_key=STRONG_KEY, bcrypt_rounds=10)


def test_production_accepts_a_safe_configuration() -> None:
    settings = build(
        environment="production",
        secret_key=STRONG_KEY,
        backend_cors_origins="https://app.example.com",
    )
    assert settings.signing_key() == STRONG_KEY
    assert settings.backend_cors_origins == ["https://app.example.com"]


# --- the development key ------------------------------------------------------------------


def test_development_generates_a_private_key_and_reuses_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = build(data_dir=data_dir).signing_key()
    path = data_dir / "secret_key"
    assert path.read_text(encoding="utf-8").strip() == key
    assert len(key) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # a new process (empty cache) reads the same key back instead of making another
    config_module._development_key.cache_clear()
    assert build(data_dir=data_dir).signing_key() == key
    # another data directory gets its own key
    assert build(data_dir=tmp_path / "other").signing_key() != key


def test_configured_key_wins_and_writes_nothing(tmp_path: Path) -> None:
    settings = build(data_dir=tmp_path, secret_key=STRONG_KEY)
    assert settings.signing_key() == STRONG_KEY
    assert not (tmp_path / "secret_key").exists()


# --- CORS parsing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('["https://app.example.com", "http://localhost:3000/"]', None),
        ("https://app.example.com,http://localhost:3000/", None),
        (" https://app.example.com , http://localhost:3000 ", None),
        ("", []),
        ("[]", []),
    ],
)
def test_cors_origins_accept_json_or_commas(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: list[str] | None
) -> None:
    monkeypatch.setenv("BACKEND_CORS_ORIGINS", raw)
    wanted = ["https://app.example.com", "http://localhost:3000"] if expected is None else expected
    assert build().backend_cors_origins == wanted


def test_cors_origins_from_a_dotenv_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("BACKEND_CORS_ORIGINS=https://a.example.com,https://b.example.com\n")
    settings = Settings(_env_file=env_file)
    assert settings.backend_cors_origins == ["https://a.example.com", "https://b.example.com"]


# --- password hashing ---------------------------------------------------------------------


async def test_default_bcrypt_cost_is_12() -> None:
    rounds = Settings(_env_file=None).bcrypt_rounds
    assert rounds == 12
    hashed = await PasswordHasher(rounds=rounds).hash("correct horse battery")
    assert hashed.startswith("$2b$12$")


async def test_unknown_user_login_still_runs_bcrypt(
    monkeypatch: pytest.MonkeyPatch, client: httpx.AsyncClient
) -> None:
    """Every failing path spends one bcrypt check, so timing does not reveal accounts."""
    calls: list[bytes] = []
    real_checkpw = bcrypt.checkpw

    def counting_checkpw(password: bytes, hashed: bytes) -> bool:
        calls.append(hashed)
        return real_checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting_checkpw)
    body = {"email": "vic@example.com", "username": "vic", "password": "password one"}
    assert (await client.post("/auth/register", json=body)).status_code == 201
    attempts = {
        "wrong password": {"username": "vic", "password": "password two"},
        "unknown user": {"username": "nobody", "password": "password two"},
        "over 72 bytes": {"username": "vic", "password": "é" * 40},
        "right password": {"username": "vic", "password": "password one"},
    }
    for label, attempt in attempts.items():
        calls.clear()
        response = await client.post("/auth/login", json=attempt)
        assert response.status_code == (200 if label == "right password" else 401), label
        assert len(calls) == 1, label
        assert calls[0].startswith(b"$2b$04$"), label  # a real hash at the configured cost


async def test_bcrypt_runs_in_at_most_max_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """A burst of logins queues for a few threads instead of taking every CPU from the loop."""
    import asyncio
    import threading
    import time

    hasher = PasswordHasher(rounds=4, max_threads=2)
    hashed = await hasher.hash("password one")
    lock = threading.Lock()
    running, peak, loop_thread = [0], [0], threading.get_ident()
    real_checkpw = bcrypt.checkpw

    def slow_checkpw(password: bytes, hashed_pw: bytes) -> bool:
        assert threading.get_ident() != loop_thread  # never on the event loop
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return real_checkpw(password, hashed_pw)

    monkeypatch.setattr(bcrypt, "checkpw", slow_checkpw)
    results = await asyncio.gather(*(hasher.verify("password one", hashed) for _ in range(6)))
    assert results == [True] * 6
    assert peak[0] == 2


# --- the default database follows DATA_DIR -----------------------------------------------


def test_default_database_is_the_sqlite_file_in_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert build().database_url == "sqlite+aiosqlite:///./data/vektor.db"
    assert build(data_dir=tmp_path).database_url == f"sqlite+aiosqlite:///{tmp_path}/vektor.db"
    assert build(data_dir="var/state").database_url == "sqlite+aiosqlite:///./var/state/vektor.db"
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("DATABASE_URL", "")  # an empty line in .env means "not set"
    assert build().database_url == f"sqlite+aiosqlite:///{tmp_path}/env/vektor.db"
    other = "postgresql+asyncpg://u@127.0.0.1:5432/db"
    assert build(data_dir=tmp_path, database_url=other).database_url == other


def test_file_storage_defaults_to_data_dir_and_takes_only_file_or_s3(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")
    assert settings.file_storage_url == f"file://{(tmp_path / 'data' / 'files').as_posix()}"
    s3 = Settings(_env_file=None, file_storage_url="s3://bucket/prefix", s3_endpoint_url="")
    assert s3.file_storage_url == "s3://bucket/prefix" and s3.s3_endpoint_url is None
    for url in ("http://example.com/files", "s3://", "/srv/files", "ftp://x"):
        with pytest.raises(ConfigError, match="FILE_STORAGE_URL"):
            Settings(_env_file=None, file_storage_url=url)


def test_storage_secrets_are_not_in_the_settings_repr() -> None:
    settings = Settings(
        _env_file=None,
        s3_endpoint_url="https://user:pass@s3.example.com",
        aws_secret_access_key="very-secret-value",
    )
    assert "pass@" not in repr(settings) and "very-secret-value" not in repr(settings)


def test_registration_mode_and_audit_retention_are_validated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defaults = Settings(_env_file=None)
    assert (defaults.registration_mode, defaults.audit_retention_days) == ("open", 365)
    monkeypatch.setenv("REGISTRATION_MODE", "approval")
    monkeypatch.setenv("AUDIT_RETENTION_DAYS", "30")
    chosen = Settings(_env_file=None)
    assert (chosen.registration_mode, chosen.audit_retention_days) == ("approval", 30)
    for name, bad in (("REGISTRATION_MODE", "invite-only"), ("AUDIT_RETENTION_DAYS", "0")):
        monkeypatch.setenv(name, bad)
        with pytest.raises(ValueError, match=name.lower()):
            Settings(_env_file=None)
        monkeypatch.delenv(name)
