"""Several gunicorn workers need Redis: without `REDIS_URL` the service refuses to start.

Real subprocesses (`python main.py prod`, and gunicorn started directly with our config):
the refusal must come before any worker is forked, exit non-zero and say why. One worker
without Redis, and several workers with Redis (test/test_logging_multiprocess.py), start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from test.support.net import free_port
from test.support.server import running_server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
WHY = "without Redis, re-attach, cancel, approvals and rate limits would break across workers"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A server environment of its own (temp database, logs, config), no Redis."""
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    (config / "mcp_servers.json").write_text('{"servers": {}}', encoding="utf-8")
    (config / "model_configs.json").write_text(
        (ROOT / "config" / "model_configs.json").read_text(encoding="utf-8"), encoding="utf-8"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMETHEUS", "VEKTOR"))}
    env.pop("WORKERS", None)
    env.update(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'vektor.db'}", CONFIG_DIR=str(config),
        DATA_DIR=str(tmp_path / "data"), LOG_DIR=str(tmp_path / "logs"), ENVIRONMENT="development",
        REDIS_URL="", HOST="127.0.0.1", PORT=str(free_port()), GRACEFUL_TIMEOUT="10",
    )  # fmt: skip
    env.update(extra)
    return env


def _refused(command: list[str], env: dict[str, str]) -> str:
    """Run a start command that must refuse; its output (it must exit non-zero, no worker)."""
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a server that did start is killed with all its workers
    )
    try:
        output, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        raise AssertionError(f"it started instead of refusing:\n{output[-2000:]}") from None
    assert proc.returncode != 0, output
    assert "Booting worker" not in output, output  # refused before forking
    assert not (Path(env["LOG_DIR"]) / "app.log").exists(), "the app started logging"
    return output


@pytest.mark.parametrize(
    ("args", "extra"),
    [(["--workers", "2"], {}), ([], {"WORKERS": "2"}), ([], {"WORKERS": "5"})],
    ids=["--workers 2", "WORKERS=2", "WORKERS=5"],
)
def test_main_prod_with_several_workers_and_no_redis_refuses(
    tmp_path: Path, args: list[str], extra: dict[str, str]
) -> None:
    env = _env(tmp_path, **extra)
    output = _refused([sys.executable, "main.py", "prod", *args], env)
    assert WHY in output
    assert "REDIS_URL" in output and "WORKERS=1" in output  # and what to do about it
    assert "Traceback" not in output


def test_gunicorn_started_directly_with_two_workers_and_no_redis_refuses(tmp_path: Path) -> None:
    env = _env(tmp_path)
    bind = f"127.0.0.1:{env['PORT']}"
    command = [sys.executable, "-m", "gunicorn", "app.main:create_app()"]
    command += ["--config", "gunicorn.conf.py", "--bind", bind, "--workers", "2"]
    output = _refused(command, env)
    assert WHY in output


def test_one_worker_without_redis_starts(tmp_path: Path) -> None:
    env = _env(tmp_path, WORKERS="1")
    with running_server([sys.executable, "main.py", "prod"], env) as server:
        assert httpx.get(f"{server.base_url}/health/ready", timeout=5).status_code == 200
        server.stop()


def test_the_default_worker_count_is_one_without_redis() -> None:
    from app.core.config import Settings

    assert Settings(_env_file=None, redis_url=None).workers == 1
    with_redis = Settings(_env_file=None, redis_url="redis://127.0.0.1:1/0")
    assert with_redis.workers == min(2 * (os.cpu_count() or 1) + 1, 9)
    assert Settings(_env_file=None, redis_url=None, workers=3).workers == 3  # then refused


def test_main_prod_without_workers_or_redis_starts_one_worker(tmp_path: Path) -> None:
    env = _env(tmp_path)
    env.pop("WORKERS", None)
    with running_server([sys.executable, "main.py", "prod"], env) as server:
        assert httpx.get(f"{server.base_url}/health/ready", timeout=5).status_code == 200
        server.stop()
