"""Conversation trees on a long conversation: `GET /chat/history/{id}` and a turn's context.

    uv run python bench/tree_history.py [--postgres URL] [--repeats 200] [--out FILE]

Builds one conversation of 2,000 messages in 50 branches directly in the database (a trunk
of 432 messages; 49 branches of 32 messages forking from every 8th message of it; the trunk's
end is the active leaf, so the active path is 432 messages long), then measures in-process
(httpx's ASGITransport, the app's own lifespan):

- `GET /chat/history/{id}` (the active branch: a path query + a siblings query),
  `?leaf=<a branch's first message>` (newest descendant, then its path) and `?all=true`;
- one turn's context build: `TreeTurns.below` (the conversation, the recursive path query and
  the replay into model messages), as `POST /chat/stream` runs it before the model is asked.

Each is run `--repeats` times after a warm-up; p50/p99 in milliseconds are printed as JSON and
written to `--out` (default bench/results/tree_history[_pg].json). SQLite uses a temporary
file; `--postgres` a fresh database on that server, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import insert, make_url, text, update
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.core.config import Settings  # noqa: E402
from app.main import create_app  # noqa: E402
from app.models import Conversation, Message  # noqa: E402
from app.services.chat.tree import TreeTurns  # noqa: E402

TRUNK, BRANCHES, BRANCH_LEN, FORK_EVERY = 432, 49, 32, 8
PASSWORD = "bench password 12345"


def tree_rows(
    *, user_id: uuid.UUID, conversation_id: uuid.UUID
) -> tuple[list[dict[str, Any]], uuid.UUID, list[uuid.UUID]]:
    """The messages (user/assistant alternating along every branch), the active leaf, and
    the first message of each side branch."""
    start = datetime.now(UTC) - timedelta(days=1)
    rows: list[dict[str, Any]] = []

    def add(parent: uuid.UUID | None, depth: int) -> uuid.UUID:
        mid = uuid.uuid4()
        role = "user" if depth % 2 == 0 else "assistant"
        rows.append(
            {
                "id": mid,
                "conversation_id": conversation_id,
                "user_id": user_id,
                "parent_id": parent,
                "role": role,
                "content": f"{role} message {len(rows)} " + "lorem ipsum " * 20,
                "status": "complete",
                "model": "vektor-echo" if role == "assistant" else None,
                "created_at": start + timedelta(milliseconds=len(rows)),
                "updated_at": start,
            }
        )
        return mid

    trunk: list[uuid.UUID] = []
    parent: uuid.UUID | None = None
    for depth in range(TRUNK):
        parent = add(parent, depth)
        trunk.append(parent)
    firsts = []
    for branch in range(BRANCHES):
        fork = FORK_EVERY * (branch + 1) - 1  # an assistant message of the trunk
        parent = trunk[fork]
        for offset in range(BRANCH_LEN):
            parent = add(parent, fork + 1 + offset)
            if offset == 0:
                firsts.append(parent)
    return rows, trunk[-1], firsts


async def timed(fn: Callable[[], Awaitable[Any]], repeats: int) -> dict[str, float]:
    """p50/p99/mean in ms of `repeats` calls after 10 warm-up calls."""
    for _ in range(10):
        await fn()
    samples = []
    for _ in range(repeats):
        began = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 2),
        "mean_ms": round(statistics.fmean(samples), 2),
    }


async def run(database_url: str, data_dir: Path, repeats: int) -> dict[str, Any]:
    """Build the tree and measure."""
    settings = Settings(
        _env_file=None,
        environment="test",
        database_url=database_url,
        secret_key="bench-secret-key-" + "x" * 40,
        bcrypt_rounds=4,
        log_dir=data_dir / "logs",
        log_level="WARNING",
        data_dir=data_dir / "data",
        redis_url=None,
        config_dir=ROOT / "config",
    )
    application = create_app(settings)
    async with (
        LifespanManager(application, startup_timeout=120, shutdown_timeout=60),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://bench"
        ) as client,
    ):
        creds = {"username": "bencher", "email": "bench@example.com", "password": PASSWORD}
        assert (await client.post("/auth/register", json=creds)).status_code == 201
        login = await client.post("/auth/login", json={"username": "bencher", "password": PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        user_id = uuid.UUID((await client.get("/users/me", headers=headers)).json()["id"])
        cid = uuid.uuid4()
        rows, leaf, firsts = tree_rows(user_id=user_id, conversation_id=cid)
        state = application.state.vektor
        async with state.session_factory() as session:
            now = datetime.now(UTC)
            await session.execute(
                insert(Conversation).values(
                    id=cid,
                    user_id=user_id,
                    title="Bench tree",
                    message_count=len(rows),
                    created_at=now,
                    updated_at=now,
                )
            )
            for i in range(0, len(rows), 500):
                await session.execute(insert(Message), rows[i : i + 500])
            await session.execute(
                update(Conversation).where(Conversation.id == cid).values(current_message_id=leaf)
            )
            await session.commit()

        async def get(params: dict[str, Any], expect: int) -> None:
            response = await client.get(f"/chat/history/{cid}", params=params, headers=headers)
            assert response.status_code == 200, response.text
            assert len(response.json()["messages"]) == expect

        async def context() -> None:
            async with state.session_factory() as session:
                place = await TreeTurns(session).below(
                    user_id=user_id, conversation_id=cid, parent_id=None, text="next"
                )
            assert len(place.history) == TRUNK

        branch = firsts[len(firsts) // 2]
        branch_depth = FORK_EVERY * (len(firsts) // 2 + 1) + BRANCH_LEN
        return {
            "messages": len(rows),
            "branches": BRANCHES + 1,
            "active_path": TRUNK,
            "history_active": await timed(lambda: get({}, TRUNK), repeats),
            "history_leaf": await timed(lambda: get({"leaf": str(branch)}, branch_depth), repeats),
            "history_all": await timed(lambda: get({"all": "true"}, len(rows)), repeats),
            "context_build": await timed(context, repeats),
        }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", help="a PostgreSQL URL (postgresql+asyncpg://...)")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        if args.postgres:
            name = f"bench_tree_{uuid.uuid4().hex[:8]}"
            admin = create_async_engine(args.postgres, isolation_level="AUTOCOMMIT")
            async with admin.connect() as conn:
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
            url = make_url(args.postgres).set(database=name)
            try:
                result = await run(
                    url.render_as_string(hide_password=False), data_dir, args.repeats
                )
            finally:
                async with admin.connect() as conn:
                    await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                await admin.dispose()
            result["database"] = "postgresql"
        else:
            result = await run(
                f"sqlite+aiosqlite:///{data_dir / 'bench.db'}", data_dir, args.repeats
            )
            result["database"] = "sqlite"
    result["at"] = datetime.now(UTC).isoformat(timespec="seconds")
    out = args.out or ROOT / "bench" / "results" / (
        "tree_history_pg.json" if args.postgres else "tree_history.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
