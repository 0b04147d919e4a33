"""The operator scripts, run as subprocesses against temporary files and directories."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
PASSWORD = "a long enough password"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty directory the scripts run in (so no `.env` of the checkout is read)."""
    return tmp_path


def script_env(workdir: Path) -> dict[str, str]:
    """Environment pointing every path at `workdir`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "SECRET_"))}
    env.update(
        DATABASE_URL=f"sqlite+aiosqlite:///{workdir / 'db' / 'vektor.db'}",
        CONFIG_DIR=str(workdir / "config"),
        DATA_DIR=str(workdir / "data"),
        LOG_DIR=str(workdir / "logs"),
        BCRYPT_ROUNDS="4",
        ENVIRONMENT="development",
    )
    return env


def run(workdir: Path, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `python scripts/<script> args...` from `workdir`."""
    return subprocess.run(
        [sys.executable, str(SCRIPTS / script), *args],
        cwd=workdir,
        env=script_env(workdir),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def query(workdir: Path, sql: str) -> list[tuple[object, ...]]:
    """Read the SQLite database the scripts wrote."""
    with sqlite3.connect(workdir / "db" / "vektor.db") as conn:
        return conn.execute(sql).fetchall()


# --- init_config.py -----------------------------------------------------------------------


def secret_of(env_file: Path) -> str:
    """The SECRET_KEY value written into a .env file."""
    lines = [line for line in env_file.read_text().splitlines() if line.startswith("SECRET_KEY=")]
    assert len(lines) == 1, lines
    return lines[0].removeprefix("SECRET_KEY=")


def test_init_config_writes_env_with_a_fresh_key(workdir: Path) -> None:
    examples = workdir / "examples"
    (examples / "app").mkdir(parents=True)
    (examples / "model_configs.example.json").write_text('{"models": []}')
    (examples / "app" / "ui.example.json").write_text('{"x": 1}')
    env_file = workdir / ".env"
    args = ("--env-file", str(env_file), "--examples-dir", str(examples))

    result = run(workdir, "init_config.py", *args)
    assert result.returncode == 0, result.stderr
    key = secret_of(env_file)
    assert len(key) >= 32
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    example_lines = (ROOT / ".env.example").read_text().splitlines()
    written_lines = env_file.read_text().splitlines()
    assert [ln for ln in written_lines if not ln.startswith("SECRET_KEY=")] == [
        ln for ln in example_lines if not ln.startswith("SECRET_KEY=")
    ]
    config = workdir / "config"
    assert (config / "model_configs.json").read_text() == '{"models": []}'
    assert (config / "app" / "ui.json").read_text() == '{"x": 1}'
    assert str(env_file) in result.stdout
    assert "model_configs.json" in result.stdout

    # a second run changes nothing and says so
    (config / "model_configs.json").write_text('{"edited": true}')
    again = run(workdir, "init_config.py", *args)
    assert again.returncode == 0, again.stderr
    assert secret_of(env_file) == key
    assert (config / "model_configs.json").read_text() == '{"edited": true}'
    assert "kept" in again.stdout

    # --force replaces .env with a new key; config files are never overwritten
    forced = run(workdir, "init_config.py", *args, "--force")
    assert forced.returncode == 0, forced.stderr
    assert secret_of(env_file) not in ("", key)
    assert (config / "model_configs.json").read_text() == '{"edited": true}'
    assert "kept" in forced.stdout

    # a config file that was deleted is copied from its example again
    (config / "model_configs.json").unlink()
    assert run(workdir, "init_config.py", *args, "--force").returncode == 0
    assert (config / "model_configs.json").read_text() == '{"models": []}'


def test_init_config_force_never_overwrites_the_shipped_config(workdir: Path) -> None:
    config = workdir / "config"  # a fresh clone's config directory, examples included
    shutil.copytree(ROOT / "config", config)
    shipped = {path: path.read_bytes() for path in config.rglob("*") if path.is_file()}
    assert (config / "mcp_servers.example.json").read_bytes() != shipped[
        config / "mcp_servers.json"
    ]
    for extra in ((), ("--force",), ("--force",)):
        result = run(
            workdir, "init_config.py", "--env-file", str(workdir / ".env"),
            "--examples-dir", str(config), "--config-dir", str(config), *extra,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "kept" in result.stdout and "mcp_servers.json" in result.stdout
    now = {path: path.read_bytes() for path in config.rglob("*") if path.is_file()}
    assert now == shipped


def test_init_config_key_passes_the_production_check(workdir: Path) -> None:
    env_file = workdir / ".env"
    assert run(workdir, "init_config.py", "--env-file", str(env_file)).returncode == 0
    code = (
        "from app.core.config import Settings;"
        f"s = Settings(_env_file={str(env_file)!r}, environment='production');"
        "print(len(s.signing_key()))"
    )
    env = script_env(workdir)
    env.pop("ENVIRONMENT")
    env.pop("BCRYPT_ROUNDS")
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) >= 32


def test_init_config_without_examples_is_fine(workdir: Path) -> None:
    result = run(
        workdir,
        "init_config.py",
        "--env-file",
        str(workdir / ".env"),
        "--examples-dir",
        str(workdir / "none"),
    )
    assert result.returncode == 0, result.stderr
    assert (workdir / ".env").exists()


# --- DATA_DIR holds the default database ------------------------------------------------


def test_data_dir_moves_the_default_database_also_with_a_generated_env(workdir: Path) -> None:
    # a new user's .env, made from .env.example; then only DATA_DIR is chosen
    env_file = workdir / ".env"
    none = str(workdir / "none")
    made = run(workdir, "init_config.py", "--env-file", str(env_file), "--examples-dir", none)
    assert made.returncode == 0, made.stderr
    env = script_env(workdir)
    del env["DATABASE_URL"]
    env["DATA_DIR"] = str(workdir / "state")
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "init_db.py")],
        cwd=workdir,  # reads the generated .env
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(workdir / "state" / "vektor.db") as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "users" in tables
    assert not (workdir / "data").exists()


# --- init_db.py ---------------------------------------------------------------------------


def test_init_db_creates_the_schema_and_is_idempotent(workdir: Path) -> None:
    first = run(workdir, "init_db.py")
    assert first.returncode == 0, first.stderr
    tables = {row[0] for row in query(workdir, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"users", "auth_sessions", "user_preferences", "alembic_version"} <= tables
    version = query(workdir, "SELECT version_num FROM alembic_version")
    second = run(workdir, "init_db.py")
    assert second.returncode == 0, second.stderr
    assert query(workdir, "SELECT version_num FROM alembic_version") == version


def test_init_db_reports_an_unreachable_database(workdir: Path) -> None:
    env = script_env(workdir)
    env["DATABASE_URL"] = "postgresql+asyncpg://nobody:hunter2pass@127.0.0.1:1/none"
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "init_db.py")],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "error" in result.stderr
    assert "hunter2pass" not in result.stderr + result.stdout


# --- startup.py ---------------------------------------------------------------------------


def create(
    workdir: Path, email: str, username: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    """startup.py --user ..."""
    return run(
        workdir,
        "startup.py",
        "--user",
        "--email",
        email,
        "--username",
        username,
        "--password",
        PASSWORD,
        *extra,
    )


def test_startup_creates_an_admin_that_can_log_in(workdir: Path) -> None:
    result = create(workdir, "Root@Example.com", "Root", "--admin")
    assert result.returncode == 0, result.stderr
    assert "root" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr
    rows = query(workdir, "SELECT email, username, is_admin, password_hash FROM users")
    assert len(rows) == 1
    email, username, is_admin, password_hash = rows[0]
    assert (email, username, is_admin) == ("root@example.com", "root", 1)
    import bcrypt

    assert isinstance(password_hash, str) and password_hash.startswith("$2b$04$")
    assert bcrypt.checkpw(PASSWORD.encode(), password_hash.encode())


@pytest.mark.parametrize("mode", ["closed", "approval"])
def test_startup_creates_an_active_admin_whatever_the_registration_mode(
    workdir: Path, mode: str
) -> None:
    env = {**script_env(workdir), "REGISTRATION_MODE": mode}
    args = ["--user", "--email", "first@example.com", "--username", "first", "--admin"]
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "startup.py"), *args, "--password", PASSWORD],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert query(workdir, "SELECT username, is_admin, is_active FROM users") == [("first", 1, 1)]


def test_startup_creates_a_normal_user_without_admin(workdir: Path) -> None:
    result = create(workdir, "plain@example.com", "plain")
    assert result.returncode == 0, result.stderr
    assert query(workdir, "SELECT username, is_admin FROM users") == [("plain", 0)]


def test_startup_reports_an_existing_account(workdir: Path) -> None:
    assert create(workdir, "root@example.com", "root", "--admin").returncode == 0
    for email, username, code in (
        ("ROOT@example.com", "someone", "email_taken"),
        ("someone@example.com", "ROOT", "username_taken"),
    ):
        result = create(workdir, email, username)
        assert result.returncode != 0
        assert code in result.stderr
    assert query(workdir, "SELECT username, is_admin FROM users") == [("root", 1)]


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["--password", "short"], "password"),
        (["--password", "é" * 40], "72 bytes"),
        (["--username", "no spaces allowed"], "username"),
        (["--email", "not-an-email"], "email"),
    ],
)
def test_startup_validates_like_registration(workdir: Path, args: list[str], mentions: str) -> None:
    values = {"--email": "v@example.com", "--username": "valid", "--password": PASSWORD}
    values.update(dict(zip(args[::2], args[1::2], strict=True)))
    flat = [item for pair in values.items() for item in pair]
    result = run(workdir, "startup.py", "--user", *flat)
    assert result.returncode != 0
    assert mentions in result.stderr
    if "--password" in args:
        assert args[1] not in result.stderr  # the rejected password is not echoed
    db = workdir / "db" / "vektor.db"
    assert not db.exists() or query(workdir, "SELECT count(*) FROM users") == [(0,)]


def test_startup_needs_the_user_flag(workdir: Path) -> None:
    result = run(workdir, "startup.py", "--email", "a@example.com", "--username", "abc")
    assert result.returncode != 0
    assert "--user" in result.stderr
