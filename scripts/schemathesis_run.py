"""Schemathesis against a real server: every non-streaming route, every check, two users.

    uv run python scripts/schemathesis_run.py [--max-examples N] [--database-url URL] [-- st args]

Starts `main.py` on a free loopback port with a private database (a SQLite file; with
`--database-url` or `TEST_DATABASE_URL` a fresh database on that PostgreSQL server, dropped
afterwards), the offline models and the stdio time MCP server (nothing outside the machine),
`ENVIRONMENT=test` and rate limits off (so a 429 never hides another answer; 429 is still
documented). Two users, `alice` (an admin) and `bob`, are peers for the object-level
authorization check; they log in through test/support/account_broker.py, which repairs an
account that a test renamed, re-passworded or deleted. Settings: test/schemathesis.toml.
The run covers the examples, coverage, fuzzing and stateful phases with `--checks all`; the
exit code is schemathesis' own (0 = no failure). The streaming routes (SSE) are left out:
schemathesis cannot judge an endless stream.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from test.support.account_broker import AccountBroker  # noqa: E402
from test.support.databases import private_database  # noqa: E402
from test.support.redis_server import free_port  # noqa: E402

CONFIG = ROOT / "test" / "schemathesis.toml"  # the two users as peers; per-operation notes
STREAMING = r"^/(chat/stream(/\{message_id\})?|sync/stream)$"
PASSWORD = "correct-horse-battery"
USERS = {"alice": True, "bob": False}  # name → admin


def server_env(workdir: Path, database_url: str) -> dict[str, str]:
    """The environment of the server under test (offline, isolated, rate limits off)."""
    config = workdir / "config"
    config.mkdir()
    shutil.copy(ROOT / "config" / "model_configs.json", config / "model_configs.json")
    shutil.copy(ROOT / "config" / "mcp_servers.json", config / "mcp_servers.json")
    env = dict(os.environ)
    env.update(
        ENVIRONMENT="test",
        DATABASE_URL=database_url,
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


def auth_file(workdir: Path, broker: AccountBroker) -> Path:
    """A Web Fuzzing Commons auth document: each user logs in through the account broker."""
    token = {
        "extractFrom": "body",
        "extractSelector": "/access_token",
        "sendIn": "header",
        "sendName": "Authorization",
        "sendTemplate": "Bearer {token}",
    }
    entries = [
        {
            "name": name,
            "loginEndpointAuth": {
                "externalEndpointURL": broker.login_url(name),
                "verb": "POST",
                "token": token,
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
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL server to make a private database on (default: TEST_DATABASE_URL, "
        "else a fresh SQLite file)",
    )
    parser.add_argument("--workers", default="1")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("st_args", nargs="*", help="more `st run` options (after --)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, workdir: Path, database_url: str) -> int:
    """Start the server and the account broker, run schemathesis; its exit code."""
    env = server_env(workdir, database_url)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=workdir,
    )
    broker = AccountBroker(
        app_url=base_url, database_url=database_url, password=PASSWORD, accounts=USERS
    )
    try:
        wait_ready(base_url, server)
        broker.ensure_accounts()
        broker.start()
        env["SCHEMATHESIS_WFC_AUTH"] = str(auth_file(workdir, broker))
        command = st_command(base_url, CONFIG, args)
        print("$", " ".join(command), flush=True)
        code = subprocess.run(command, cwd=workdir, env=env, check=False).returncode
        print(f"accounts repaired between logins: {broker.restored}")
        return code
    finally:
        broker.stop()
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()


def main(argv: list[str] | None = None) -> int:
    """A work directory and a private database around one run."""
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="vektor-schemathesis-"))
    try:
        base = args.database_url or os.environ.get("TEST_DATABASE_URL", "")
        with private_database(base, workdir, prefix="vektor_schemathesis") as database_url:
            return run(args, workdir, database_url)
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
