"""Schemathesis against a real server: every non-streaming route, every check, two users.

    uv run python scripts/schemathesis_run.py [--max-examples N] [--database-url URL] [-- st args]

Starts `main.py` on a free loopback port with a fresh database (a SQLite file in a temporary
directory unless `--database-url` names another), the offline models and the stdio time MCP
server (nothing outside the machine), `ENVIRONMENT=test` and rate limits off (so a 429 never
hides another answer; 429 is still documented). Two users log in through `/auth/login` (a Web
Fuzzing Commons auth file, so schemathesis logs in again after a test revoked the session):
`alice`, an admin, and `bob`, peers for the object-level authorization check (see
test/schemathesis.toml). The run covers the examples, coverage, fuzzing and stateful phases
with `--checks all`; the exit code is schemathesis' own (0 = no failure). The streaming routes
(SSE) are left out: schemathesis cannot judge an endless stream.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "test" / "schemathesis.toml"  # the two users as peers; per-operation notes
STREAMING = r"^/(chat/stream(/\{message_id\})?|sync/stream)$"
STREAMING_METHODS = r"^GET|POST$"
PASSWORD = "correct-horse-battery"
USERS = {"alice": True, "bob": False}  # name → admin


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(workdir: Path, database_url: str | None) -> dict[str, str]:
    """The environment of the server under test (offline, isolated, rate limits off)."""
    config = workdir / "config"
    config.mkdir()
    shutil.copy(ROOT / "config" / "model_configs.json", config / "model_configs.json")
    shutil.copy(ROOT / "config" / "mcp_servers.json", config / "mcp_servers.json")
    env = dict(os.environ)
    env.update(
        ENVIRONMENT="test",
        DATABASE_URL=database_url or f"sqlite+aiosqlite:///{workdir / 'vektor.db'}",
        CONFIG_DIR=str(config),
        DATA_DIR=str(workdir / "data"),
        LOG_DIR=str(workdir / "logs"),
        LOG_LEVEL="WARNING",
        SECRET_KEY=secrets.token_urlsafe(48),
        BCRYPT_ROUNDS="4",
        RATE_LIMIT_ENABLED="false",
        REDIS_URL="",
        BACKEND_CORS_ORIGINS="",
    )
    return env


def create_users(env: dict[str, str], workdir: Path) -> None:
    """Create the two accounts (before the server starts; the script migrates the database)."""
    for name, admin in USERS.items():
        command = [sys.executable, str(ROOT / "scripts" / "startup.py"), "--user"]
        command += ["--email", f"{name}@example.com", "--username", name, "--password", PASSWORD]
        subprocess.run(
            [*command, *(["--admin"] if admin else [])], env=env, cwd=workdir, check=True
        )


def wait_ready(base_url: str, server: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    """Wait until `/health/ready` answers 200 (or the server died)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{base_url}/health/ready", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"the server was not ready within {timeout_s:.0f} s")


def auth_file(workdir: Path) -> Path:
    """A Web Fuzzing Commons auth document: each user logs in through JSON `/auth/login`."""
    entries = [
        {
            "name": name,
            "loginEndpointAuth": {
                "endpoint": "/auth/login",
                "verb": "POST",
                "contentType": "application/json",
                "payloadUserPwd": {
                    "username": name,
                    "password": PASSWORD,
                    "usernameField": "username",
                    "passwordField": "password",
                },
                "token": {
                    "extractFrom": "body",
                    "extractSelector": "/access_token",
                    "sendIn": "header",
                    "sendName": "Authorization",
                    "sendTemplate": "Bearer {token}",
                },
            },
        }
        for name in USERS
    ]
    path = workdir / "auth.json"
    path.write_text(json.dumps({"auth": entries}))
    return path


def st_command(base_url: str, config: Path, args: argparse.Namespace) -> list[str]:
    """The `st run` command line."""
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or "st"
    command = [st, "--config-file", str(config), "run", f"{base_url}/openapi.json"]
    command += ["--phases", "examples,coverage,fuzzing,stateful", "--checks", "all"]
    command += ["--exclude-path-regex", STREAMING, "--workers", str(args.workers)]
    command += ["--request-timeout", "30", "--no-color"]
    if args.max_examples:
        command += ["--max-examples", str(args.max_examples)]
    if args.seed is not None:
        command += ["--seed", str(args.seed)]
    return [*command, *args.st_args]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=None, help="per operation and phase")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--workers", default="1")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("st_args", nargs="*", help="more `st run` options (after --)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start the server, run schemathesis against it, stop the server; schemathesis' exit code."""
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="vektor-schemathesis-"))
    env = server_env(workdir, args.database_url)
    create_users(env, workdir)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=workdir,
    )
    try:
        wait_ready(base_url, server)
        env["SCHEMATHESIS_WFC_AUTH"] = str(auth_file(workdir))
        command = st_command(base_url, CONFIG, args)
        print("$", " ".join(command), flush=True)
        return subprocess.run(command, cwd=workdir, env=env, check=False).returncode
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
