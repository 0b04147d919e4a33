"""Login latency with and without the audit log: p50/p99 of `POST /auth/login`.

    uv run python bench/login_p50.py [--logins 400] [--database-url URL] [--app-root DIR] [--ab]

Runs the app in-process (httpx's ASGI transport: no socket noise) on a temporary SQLite
database or on `--database-url` (a scratch PostgreSQL database is created and dropped),
with BCRYPT_ROUNDS=4 so that bcrypt (~250 ms at the production cost 12) does not hide the
database work a login does, and rate limits off. Registers one user, warms up, then logs in
`--logins` times one after another. `--app-root` measures another checkout (e.g. the main
branch, for the "before" figure). `--ab` measures the audit log's own cost in one process:
blocks of 10 logins alternate between recording audit events and not (the writer runs
throughout), so load from other processes falls on both halves alike. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]
PASSWORD = "bench password 12345"


async def measure(
    root: Path, database_url: str | None, logins: int, ab: bool = False
) -> dict[str, Any]:
    """Start the app on a fresh database and time `logins` sequential logins."""
    import httpx
    from asgi_lifespan import LifespanManager
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    from app.core.config import Settings
    from app.main import create_app

    with tempfile.TemporaryDirectory(prefix="vektor-login-") as tmp:
        work = Path(tmp)
        url, admin_url, name = f"sqlite+aiosqlite:///{work / 'bench.db'}", None, ""
        if database_url:
            name = f"bench_login_{uuid.uuid4().hex[:8]}"
            admin_url = database_url
            url = make_url(database_url).set(database=name).render_as_string(False)
            engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
            async with engine.connect() as conn:
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
            await engine.dispose()
        settings = Settings(
            _env_file=None,
            environment="test",
            database_url=url,
            secret_key="bench-secret-key-" + "x" * 40,
            bcrypt_rounds=4,
            rate_limit_enabled=False,
            log_dir=work / "logs",
            log_level="WARNING",
            data_dir=work / "data",
            config_dir=root / "config",
        )
        times: list[float] = []
        without: list[float] = []  # --ab: the logins that recorded no audit event
        try:
            app = create_app(settings)
            async with LifespanManager(app, startup_timeout=120):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
                    user = {"email": "b@example.com", "username": "bench", "password": PASSWORD}
                    (await client.post("/auth/register", json=user)).raise_for_status()
                    body = {"username": "bench", "password": PASSWORD}
                    audit = getattr(app.state.vektor, "audit", None)  # None: before issue 14
                    for i in range(50 + logins * (2 if ab else 1)):
                        off = ab and (i // 10) % 2 == 1
                        if ab:  # an instance attribute shadows the method; deleted: back on
                            if off:
                                audit.record = lambda event: None
                            elif "record" in vars(audit):
                                del audit.record
                        started = time.perf_counter()
                        (await client.post("/auth/login", json=body)).raise_for_status()
                        if i >= 50:  # the first 50 warm up caches and prepared statements
                            elapsed = (time.perf_counter() - started) * 1000
                            (without if off else times).append(elapsed)
        finally:
            if admin_url:
                engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
                async with engine.connect() as conn:
                    await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                await engine.dispose()
    result = {"database": "postgresql" if database_url else "sqlite", **_summary(times)}
    if ab:
        result["without_audit"] = _summary(without)
    return result


def _summary(times: list[float]) -> dict[str, Any]:
    ordered = sorted(times)
    return {
        "logins": len(ordered),
        "p50_ms": round(ordered[len(ordered) // 2], 3),
        "p99_ms": round(ordered[int(len(ordered) * 0.99)], 2),
    }


def main() -> int:
    """Parse options, measure, print JSON."""
    parser = argparse.ArgumentParser(description="login p50 (in-process, bcrypt cost 4)")
    parser.add_argument("--logins", type=int, default=400)
    parser.add_argument("--database-url", default=None, help="a PostgreSQL server to use")
    parser.add_argument("--app-root", type=Path, default=HERE, help="the checkout to measure")
    parser.add_argument("--ab", action="store_true", help="audit events on/off, alternating")
    args = parser.parse_args()
    sys.path.insert(0, str(args.app_root.resolve()))
    root = args.app_root.resolve()
    result = asyncio.run(measure(root, args.database_url, args.logins, args.ab))
    print(json.dumps({"app_root": str(args.app_root), **result}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
