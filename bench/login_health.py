"""Does bcrypt stall the event loop? /health latency while logins run vs idle.

    uv run python bench/login_health.py [--concurrency 8] [--seconds 10] [--out FILE]

Starts the app with uvicorn on a free 127.0.0.1 port (default settings, a temporary SQLite
database, BCRYPT_ROUNDS=12; rate limits off so every login really runs bcrypt), registers
one user, then polls /health every 50 ms: first with the server idle, then while N loops
log in back to back. If hashing ran on the event loop, every /health during the load
phase would wait behind a ~0.25 s bcrypt call; in a worker thread it only competes for CPU.
Prints the figures as JSON and writes them to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "bench password 12345"
POLL_INTERVAL_S = 0.05


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(port: int, workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """uvicorn running the app factory, stopped (SIGTERM, then kill) on exit."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ENVIRONMENT": "development",
        "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
        "DATA_DIR": str(workdir / "data"),
        "LOG_DIR": str(workdir / "logs"),
        "CONFIG_DIR": os.environ.get("CONFIG_DIR", str(ROOT / "config")),
        "BCRYPT_ROUNDS": "12",
        "RATE_LIMIT_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
    }
    command = [
        sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    log = (workdir / "server.out").open("wb")
    process = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=log)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


async def wait_ready(client: httpx.AsyncClient, process: subprocess.Popen[bytes]) -> None:
    """Poll /health until the server answers (start-up runs migrations)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if (await client.get("/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise TimeoutError("server did not become ready in 120 s")


async def poll_health(client: httpx.AsyncClient, stop: asyncio.Event) -> list[float]:
    """GET /health every 50 ms until `stop`; latencies in milliseconds."""
    latencies: list[float] = []
    while not stop.is_set():
        started = time.perf_counter()
        response = await client.get("/health")
        elapsed = time.perf_counter() - started
        response.raise_for_status()
        latencies.append(elapsed * 1000)
        await asyncio.sleep(max(0.0, POLL_INTERVAL_S - elapsed))
    return latencies


async def login_loop(client: httpx.AsyncClient, stop: asyncio.Event, times: list[float]) -> None:
    """Log in back to back until `stop`, recording each login's latency."""
    body = {"username": "bench", "password": PASSWORD}
    while not stop.is_set():
        started = time.perf_counter()
        response = await client.post("/auth/login", json=body)
        response.raise_for_status()
        times.append((time.perf_counter() - started) * 1000)


def summary(values: list[float]) -> dict[str, Any]:
    """Count, p50, p99 and max, rounded to 0.1 ms."""
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))], 1)

    return {
        "n": len(ordered),
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "max_ms": round(ordered[-1], 1),
    }


async def phase(base_url: str, seconds: float, concurrency: int) -> dict[str, Any]:
    """Poll /health for `seconds` with `concurrency` login loops running (0 = idle)."""
    stop = asyncio.Event()
    login_times: list[float] = []
    limits = httpx.Limits(max_connections=concurrency + 1)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=60) as health_client,
        httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as login_client,
    ):
        loops = [
            asyncio.create_task(login_loop(login_client, stop, login_times))
            for _ in range(concurrency)
        ]
        poller = asyncio.create_task(poll_health(health_client, stop))
        started = time.perf_counter()
        await asyncio.sleep(seconds)
        stop.set()
        health = await poller
        await asyncio.gather(*loops)
        elapsed = time.perf_counter() - started
    result: dict[str, Any] = {"health": summary(health)}
    if concurrency:
        result["login"] = summary(login_times)
        result["logins_per_s"] = round(len(login_times) / elapsed, 2)
    return result


async def run(concurrency: int, seconds: float) -> dict[str, Any]:
    """Start the server, register the user, measure idle then under login load."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with (
        tempfile.TemporaryDirectory(prefix="vektor-bench-") as tmp,
        server(port, Path(tmp)) as proc,
    ):
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            await wait_ready(client, proc)
            user = {"email": "bench@example.com", "username": "bench", "password": PASSWORD}
            (await client.post("/auth/register", json=user)).raise_for_status()
            warm = await client.post(
                "/auth/login", json={"username": "bench", "password": PASSWORD}
            )
            warm.raise_for_status()
        idle = await phase(base_url, seconds, 0)
        loaded = await phase(base_url, seconds, concurrency)
    return {
        "benchmark": "login_health",
        "bcrypt_rounds": 12,
        "concurrency": concurrency,
        "seconds_per_phase": seconds,
        "poll_interval_ms": POLL_INTERVAL_S * 1000,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "idle": idle,
        "during_logins": loaded,
    }


def main() -> int:
    """Parse options, run, print and save the JSON."""
    parser = argparse.ArgumentParser(description="/health latency during bcrypt logins")
    parser.add_argument("--concurrency", type=int, default=8, help="parallel login loops")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "login_health.json"
    )
    args = parser.parse_args()
    result = asyncio.run(run(args.concurrency, args.seconds))
    text = json.dumps(result, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
