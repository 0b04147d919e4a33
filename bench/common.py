"""Shared benchmark plumbing: free ports, subprocess servers, percentiles."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 60.0) -> None:
    """Poll a URL until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def start_app(
    *,
    port: int,
    workdir: Path,
    config_dir: Path,
    extra_env: dict[str, str] | None = None,
    database_url: str | None = None,
    cpus: set[int] | None = None,
    args: list[str] | None = None,
) -> subprocess.Popen[bytes]:
    """Run `python main.py` (uvicorn, one process; `args` e.g. `["prod", "--workers", "2"]`
    for gunicorn) on a temp SQLite database (or the given database, which should be empty),
    on the given cores (its children inherit them)."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url or f"sqlite+aiosqlite:///{workdir}/bench.db",
        "CONFIG_DIR": str(config_dir),
        "LOG_DIR": str(workdir / "logs"),
        "DATA_DIR": str(workdir / "data"),
        "LOG_LEVEL": "WARNING",
        "BCRYPT_ROUNDS": "4",
        "RATE_LIMIT_CHAT": "1000000/minute",
        "RATE_LIMIT_LOGIN_IP": "1000000/minute",
        "RATE_LIMIT_LOGIN_ACCOUNT": "1000000/minute",
        "RATE_LIMIT_REGISTER": "1000000/minute",
        "MAX_CONCURRENT_GENERATIONS": "1000",
        **(extra_env or {}),
    }
    log = (workdir / f"app-{port}.out").open("wb")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), *(args or []), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        start_new_session=True,  # its own process group: gunicorn's workers can be killed with it
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
    except RuntimeError:
        process.kill()
        tail = (workdir / f"app-{port}.out").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"the app did not start:\n{tail}") from None
    return process


def raise_nofile() -> int:
    """Raise this process's open-file limit to its hard limit (children inherit it)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def git_commit() -> str:
    """The checked-out commit (with `+dirty` when the tree has changes), or `unknown`."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (0 for an empty list)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    """p50 / p90 / p99 / max of a sample."""
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 3),
        "p90": round(percentile(values, 90), 3),
        "p99": round(percentile(values, 99), 3),
        "max": round(max(values), 3) if values else 0.0,
    }


def write_result(name: str, data: dict[str, Any]) -> Path:
    """Write a JSON result under bench/results/."""
    path = ROOT / "bench" / "results" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    return path


def fresh_postgres_database(base_url: str) -> tuple[str, Callable[[], None]]:
    """Create an empty PostgreSQL database next to `base_url`; returns its URL and a dropper."""
    import asyncio
    import uuid

    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    name = f"vektor_bench_{uuid.uuid4().hex[:10]}"
    admin = make_url(base_url).set(database="postgres").render_as_string(hide_password=False)

    async def run(sql: str) -> None:
        engine = create_async_engine(admin, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(sql))
        await engine.dispose()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    url = make_url(base_url).set(database=name).render_as_string(hide_password=False)
    return url, lambda: asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
