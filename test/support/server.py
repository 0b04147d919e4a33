"""The service as a real subprocess on a free loopback port, for black-box tests.

    with running_server([sys.executable, "main.py"], env) as server:
        httpx.get(server.base_url + "/health")

`server_env()` gives an environment that keeps everything (database, logs, data, config)
under one temporary directory; the process runs in its own session, so a failing test kills
it with all its children.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from test.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Server:
    """A started server process and where it writes."""

    proc: subprocess.Popen[bytes]
    base_url: str
    output: Path

    def tail(self) -> str:
        """The end of its stdout/stderr, for failure messages."""
        return self.output.read_text(errors="replace")[-4000:]

    def stop(self, timeout: float = 40) -> None:
        """SIGTERM, then wait (bounded) for a clean exit (uvicorn re-raises the signal, and
        uv, which `run.py` becomes, exits with 128 + its number after passing it on)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the server ignored SIGTERM:\n{self.tail()}") from None
        clean = (0, -signal.SIGTERM, 128 + signal.SIGTERM)
        assert code in clean, f"exit code {code}:\n{self.tail()}"


def server_env(base: Path, **settings: str) -> dict[str, str]:
    """This process's environment with every path of the service under `base`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMETHEUS", "VEKTOR"))}
    for key in ("DATABASE_URL", "REDIS_URL", "WORKERS", "SECRET_KEY", "LOG_LEVEL"):
        env.pop(key, None)
    env.update(
        ENVIRONMENT="development", HOST="127.0.0.1", PORT=str(free_port()),
        DATA_DIR=str(base / "data"), LOG_DIR=str(base / "logs"), BCRYPT_ROUNDS="4",
    )  # fmt: skip
    env.update(settings)
    return env


@contextmanager
def running_server(
    command: list[str], env: dict[str, str], *, cwd: Path = ROOT, start_timeout: float = 180
) -> Iterator[Server]:
    """Start `command`, wait for `/health/live`, yield it; nothing outlives the block."""
    output = Path(env["LOG_DIR"]).parent / "server.out"
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("wb") as sink:
        proc = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(proc, f"http://127.0.0.1:{env['PORT']}", output)
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            assert proc.poll() is None, f"the server exited:\n{server.tail()}"
            try:
                if httpx.get(f"{server.base_url}/health/live", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the server did not start:\n{server.tail()}"
            time.sleep(0.2)
        yield server
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
