"""A reply that reached the client reaches the database, even when the database was away.

The database goes away two seconds into a long answer (PostgreSQL: the test's own cluster is
stopped; SQLite: another connection holds the write lock) and comes back nine seconds
later. The client gets every token and `done` on time; the saved message ends `complete`
with the whole text, without restarting the app. If the app stops while the database is
still away, the unsaved writes are spooled to DATA_DIR/spool and the next start replays them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from sqlalchemy import select

from app.models import Conversation, Message
from app.services.chat.store import make_title
from test.support.apps import make_settings, served
from test.support.auth import register_and_login
from test.support.pg_cluster import PgCluster

pytestmark = pytest.mark.slow

WORDS = " ".join(f"w{i}" for i in range(200))  # echo-slow: 30 ms a word, ~6 s
EXPECTED = f"Echo: {WORDS}"
DOWN_AFTER_S = 2.0
DOWN_FOR_S = 9.0


@dataclass
class Backend:
    """A database the test can take away and give back."""

    url: str
    take_away: Callable[[], None]
    give_back: Callable[[], None]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """SQLite (a held write lock) or PostgreSQL (a stopped server)."""
    if request.param == "postgresql":
        pg: PgCluster = request.getfixturevalue("cluster")
        yield Backend(pg.create_database(), pg.stop, pg.start)
        if not pg.running():
            pg.start()
        return
    path = tmp_path / "durable.db"
    holder: list[sqlite3.Connection] = []

    def lock() -> None:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        holder.append(conn)

    def unlock() -> None:
        while holder:
            conn = holder.pop()
            conn.execute("ROLLBACK")
            conn.close()

    yield Backend(f"sqlite+aiosqlite:///{path}", lock, unlock)
    unlock()


@asynccontextmanager
async def _serving(
    url: str, log_dir: Path, config_dir: Path, data_dir: Path
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    settings = make_settings(
        url, log_dir, config_dir=config_dir, data_dir=data_dir, db_timeout_seconds=1
    )
    async with served(settings, timeout=60) as pair:
        yield pair


async def _answer_through_an_outage(
    client: httpx.AsyncClient, headers: dict[str, str], backend: Backend, *, back: bool
) -> tuple[dict[str, Any], asyncio.Task[None], asyncio.Event]:
    """Stream a long answer; the database goes away 2 s into it (and, if `back`, returns
    9 s later). Returns the `start` event, the outage task and the event set when it ended."""
    returned = asyncio.Event()
    gone = asyncio.Event()

    async def outage() -> None:
        await asyncio.sleep(DOWN_AFTER_S)
        await asyncio.to_thread(backend.take_away)
        gone.set()
        if back:
            await asyncio.sleep(DOWN_FOR_S)
            await asyncio.to_thread(backend.give_back)
            returned.set()

    events: list[tuple[str, dict[str, Any]]] = []
    task: asyncio.Task[None] | None = None
    body = {"message": WORDS, "model": "echo-slow"}
    async with aconnect_sse(client, "POST", "/chat/stream", json=body, headers=headers) as source:
        assert source.response.status_code == 200
        async for sse in source.aiter_sse():
            events.append((sse.event, json.loads(sse.data)))
            if sse.event == "delta" and task is None:
                task = asyncio.create_task(outage())
    assert task is not None
    # the client got the whole answer and `done` while the database was still away
    assert [name for name, _ in events][-1] == "done", events[-3:]
    assert "".join(d["content"] for name, d in events if name == "delta") == EXPECTED
    assert gone.is_set() and not returned.is_set()
    start = next(data for name, data in events if name == "start")
    return start, task, returned


async def _saved(application: Any, message_id: str) -> tuple[str, str, str | None]:
    async with application.state.vektor.engine.connect() as conn:
        row = (
            await conn.execute(
                select(Message.status, Message.content, Message.error_code).where(
                    Message.id == uuid.UUID(message_id)
                )
            )
        ).one()
    return row[0], row[1], row[2]


async def test_an_answer_finished_while_the_database_was_away_is_saved_when_it_returns(
    backend: Backend, log_dir: Path, config_dir: Path, tmp_path: Path
) -> None:
    async with _serving(backend.url, log_dir, config_dir, tmp_path / "data") as (app, client):
        alice = await register_and_login(client, "alice")
        start, outage, returned = await _answer_through_an_outage(
            client, alice["headers"], backend, back=True
        )
        await outage  # the database is back, the app was never restarted
        assert returned.is_set()
        saved: tuple[str, str, str | None] = ("", "", None)
        for _ in range(600):
            with contextlib.suppress(Exception):  # the app's pool reconnects: ask again
                saved = await _saved(app, start["message_id"])
            if saved[0] == "complete":
                break
            await asyncio.sleep(0.1)
        assert saved == ("complete", EXPECTED, None)
        conversation = await client.get(
            f"/chat/history/{start['conversation_id']}", headers=alice["headers"]
        )
        assert conversation.status_code == 200
        assert conversation.json()["title"] == make_title(WORDS)
        assert conversation.json()["messages"][-1]["content"] == EXPECTED
        assert not list((tmp_path / "data" / "spool").glob("*.json"))


async def test_unsaved_writes_are_spooled_at_shutdown_and_replayed_at_the_next_start(
    backend: Backend, log_dir: Path, config_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    async with _serving(backend.url, log_dir, config_dir, data) as (_, client):
        alice = await register_and_login(client, "alice")
        start, outage, _ = await _answer_through_an_outage(
            client, alice["headers"], backend, back=False
        )
        await outage
    # stopped while the database was away: the finish waits on disk
    spooled = sorted((data / "spool").glob("*.json"))
    assert spooled, "nothing was spooled"
    documents = [json.loads(path.read_bytes()) for path in spooled]
    finish = [d["write"] for d in documents if d["write"]["kind"] == "finish"]
    assert finish and finish[-1]["content"] == EXPECTED
    assert finish[-1]["message_id"] == start["message_id"]

    backend.give_back()
    async with _serving(backend.url, log_dir, config_dir, data) as (app, client):
        # replayed before the first request was served
        assert await _saved(app, start["message_id"]) == ("complete", EXPECTED, None)
        assert not list((data / "spool").glob("*.json"))
        history = await client.get(
            f"/chat/history/{start['conversation_id']}", headers=alice["headers"]
        )
        assert history.status_code == 200
        assert history.json()["messages"][-1]["status"] == "complete"
        async with app.state.vektor.engine.connect() as conn:
            preview = (
                await conn.execute(
                    select(Conversation.last_message_preview).where(
                        Conversation.id == uuid.UUID(start["conversation_id"])
                    )
                )
            ).scalar_one()
        assert preview == EXPECTED[:200]
