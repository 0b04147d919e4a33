"""A dead, frozen or locked database: every route answers `503 database_unavailable` within
DB_TIMEOUT_SECONDS (never a 500, never a hang), /health answers within 2 s, the service
recovers by itself, and error.log gets one line per outage instead of a traceback per request.

PostgreSQL runs in a cluster the test owns (test/support/pg_cluster.py): stopped (connection
refused) and frozen (SIGSTOP). On SQLite another connection holds the write lock.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from loguru import logger

from test.support.apps import make_settings, served
from test.support.auth import TEST_PASSWORD, make_admin, register_and_login
from test.support.files import multipart
from test.support.pg_cluster import PgCluster
from test.support.sse import stream_chat

DB_TIMEOUT = 2.0
MARGIN = 1.5  # scheduling on a loaded machine; a hang or a retry loop would be far over
HEALTH_LIMIT = 2.0


@asynccontextmanager
async def _app(database_url: str, log_dir: Path, config_dir: Path) -> AsyncIterator[Any]:
    settings = make_settings(
        database_url,
        log_dir,
        config_dir=config_dir,
        db_timeout_seconds=DB_TIMEOUT,
        data_dir=log_dir.parent / f"data-{uuid.uuid4().hex[:8]}",
    )
    # a real socket: streams start and are cut like a client sees them (httpx's
    # ASGITransport would wait for a stream's end)
    async with served(settings) as pair:
        yield pair


async def _world(client: httpx.AsyncClient, state: Any) -> dict[str, Any]:
    """A user (admin) with a conversation, before the outage."""
    alice = await register_and_login(client, "alice")
    await make_admin(state, alice["user"]["id"])
    events = await stream_chat(client, alice["headers"], message="hello")
    start = next(e.data for e in events if e.name == "start")
    alice["conversation_id"] = start["conversation_id"]
    alice["message_id"] = start["message_id"]
    conversation = await client.get(
        f"/chat/history/{start['conversation_id']}", headers=alice["headers"]
    )
    alice["question_id"] = conversation.json()["messages"][0]["id"]
    sessions = await client.get("/auth/sessions", headers=alice["headers"])
    alice["session_id"] = sessions.json()[0]["id"]
    key = await client.post("/users/me/api-keys", json={"name": "k"}, headers=alice["headers"])
    alice["key_id"], alice["api_key"] = key.json()["id"], key.json()["key"]
    body, headers = multipart("note.txt", b"hello\n", "text/plain")
    uploaded = await client.post("/files", content=body, headers={**alice["headers"], **headers})
    alice["file_id"] = uploaded.json()["id"]
    alice["bob_id"] = (await register_and_login(client, "bob"))["user"]["id"]
    return alice


def _requests(world: dict[str, Any]) -> list[tuple[str, str, dict[str, Any] | None, bool]]:
    """(method, path, json body, writes) of one route of each kind (a chat stream starts on a
    locked SQLite file: its writes are held for retry)."""
    cid, mid = world["conversation_id"], world["message_id"]
    return [
        ("POST", "/auth/login", {"username": "alice", "password": TEST_PASSWORD}, True),
        (
            "POST",
            "/auth/register",
            {"email": "new@example.com", "username": "newbie", "password": TEST_PASSWORD},
            True,
        ),
        ("POST", "/auth/refresh", {"refresh_token": world["refresh_token"]}, True),
        ("GET", "/auth/sessions", None, False),
        ("GET", "/users/me", None, False),
        ("PUT", "/users/me", {"full_name": "Alice A."}, True),
        ("GET", "/users/preferences", None, False),
        ("PUT", "/users/preferences", {"theme": "dark"}, True),
        ("GET", "/chat/history", None, False),
        ("GET", f"/chat/history/{cid}", None, False),
        ("PATCH", f"/chat/history/{cid}", {"title": "renamed"}, True),
        ("POST", "/chat/stream", {"message": "hi", "conversation_id": cid}, False),
        ("GET", f"/chat/stream/{mid}", None, False),
        ("GET", "/sync/changes", None, False),
        ("GET", "/sync/stream", None, False),
        ("GET", "/sync/export", None, False),
        ("GET", "/mcp/servers", None, False),
    ]


def _more_requests(world: dict[str, Any]) -> list[tuple[str, str, dict[str, Any] | None, bool]]:
    """Every other route that needs the database (the first list has one of each kind)."""
    cid, mid, qid = world["conversation_id"], world["message_id"], world["question_id"]
    fid, uid = world["file_id"], world["bob_id"]
    backup = {"format": "vektor-backup", "version": 1, "exported_at": "2024-05-01T12:00:00Z"}
    return [
        ("GET", "/chat/models", None, False),
        ("POST", f"/chat/stream/{mid}/cancel", None, False),
        ("POST", f"/chat/messages/{mid}/regenerate", {}, False),
        ("POST", f"/chat/messages/{qid}/edit", {"content": "changed"}, False),
        ("POST", f"/chat/messages/{mid}/continue", {}, False),
        ("PUT", f"/chat/history/{cid}/current", {"message_id": mid}, True),
        ("DELETE", f"/chat/messages/{mid}", None, True),
        ("DELETE", f"/chat/history/{cid}", None, True),
        ("POST", "/auth/stream-ticket", None, False),
        ("DELETE", f"/auth/sessions/{world['session_id']}", None, True),
        ("GET", "/users/me/usage", None, False),
        (
            "POST",
            "/users/change-password",
            {"current_password": TEST_PASSWORD, "new_password": "another long one"},
            True,
        ),
        ("GET", "/users/me/api-keys", None, False),
        ("POST", "/users/me/api-keys", {"name": "k2"}, True),
        ("DELETE", f"/users/me/api-keys/{world['key_id']}", None, True),
        ("GET", "/files", None, False),
        ("GET", f"/files/{fid}", None, False),
        ("GET", f"/files/{fid}/content", None, False),
        ("DELETE", f"/files/{fid}", None, True),
        ("GET", "/mcp/tools", None, False),
        ("GET", "/admin/users", None, False),
        ("GET", f"/admin/users/{uid}", None, False),
        ("PATCH", f"/admin/users/{uid}", {"is_active": False}, True),
        ("POST", f"/admin/users/{uid}/revoke-sessions", None, True),
        ("DELETE", f"/admin/users/{uid}", None, True),
        ("GET", "/admin/audit", None, False),
        ("GET", "/admin/usage", None, False),
        ("POST", "/sync/import", {**backup, "conversations": []}, False),  # nothing to write
        ("DELETE", "/users/me", {"password": TEST_PASSWORD}, True),
        ("POST", "/auth/logout", {}, True),
    ]


async def _call(
    client: httpx.AsyncClient, world: dict[str, Any], method: str, path: str, body: Any
) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    request = client.build_request(method, path, json=body, headers=world["headers"])
    response = await client.send(request, stream=True)
    try:
        # an SSE route that started would never end: its status line is the answer here
        if response.status_code != 200 or "event-stream" not in response.headers.get(
            "content-type", ""
        ):
            await response.aread()
    finally:
        await response.aclose()
    return response, time.monotonic() - started


def _error_lines(log_dir: Path, offset: int) -> list[str]:
    path = log_dir / "error.log"
    if not path.exists():
        return []
    return path.read_text(encoding="utf-8")[offset:].splitlines()


def _size(log_dir: Path) -> int:
    path = log_dir / "error.log"
    return len(path.read_text(encoding="utf-8")) if path.exists() else 0


async def _health_within_limit(client: httpx.AsyncClient) -> None:
    for path in ("/health", "/health/ready"):
        started = time.monotonic()
        response = await client.get(path)
        elapsed = time.monotonic() - started
        assert response.status_code == 503, (path, response.text)
        assert elapsed < HEALTH_LIMIT, (path, elapsed)
        database = response.json()["checks" if path == "/health" else "database"]
        database = database.get("database", database)
        assert database["status"] == "error"
    assert (await client.get("/health/live")).status_code == 200


async def _wait_recovered(client: httpx.AsyncClient, world: dict[str, Any]) -> float:
    started = time.monotonic()
    while time.monotonic() - started < 20:
        ready = await client.get("/health/ready")
        if ready.status_code == 200:
            me = await client.get("/users/me", headers=world["headers"])
            assert me.status_code == 200, me.text
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    pytest.fail("the service did not recover after the database came back")


async def _every_route_is_a_quick_503(client: httpx.AsyncClient, world: dict[str, Any]) -> None:
    api_key = {**world, "headers": {"Authorization": f"Bearer {world['api_key']}"}}
    for who, (method, path, body, _writes) in [
        *((world, request) for request in _requests(world) + _more_requests(world)),
        (api_key, ("GET", "/users/me", None, False)),  # signed in with an API key
    ]:
        response, elapsed = await _call(client, who, method, path, body)
        assert response.status_code == 503, (method, path, response.status_code)
        assert response.json() == {
            "detail": "The database is unavailable; try again shortly",
            "code": "database_unavailable",
        }
        assert response.headers["Retry-After"] == "5"
        assert elapsed < DB_TIMEOUT + MARGIN, (method, path, elapsed)


async def _one_line_per_outage(log_dir: Path, offset: int) -> None:
    await asyncio.to_thread(logger.complete)  # the file sinks are enqueued
    lines = _error_lines(log_dir, offset)
    assert len(lines) == 1, lines
    assert "database unavailable" in lines[0]
    assert "Traceback" not in lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("failure", ["stopped", "frozen"])
async def test_a_dead_or_frozen_postgresql_is_a_quick_503_on_every_route(
    cluster: PgCluster, log_dir: Path, config_dir: Path, failure: str
) -> None:
    url = cluster.create_database()
    async with _app(url, log_dir, config_dir) as (application, c):
        world = await _world(c, application.state.vektor)
        await asyncio.to_thread(logger.complete)
        offset = _size(log_dir)
        app_offset = len((log_dir / "app.log").read_text(encoding="utf-8"))
        try:
            if failure == "stopped":
                cluster.stop()
            else:
                cluster.freeze()
            await _every_route_is_a_quick_503(c, world)
            await _health_within_limit(c)
        finally:
            if failure == "stopped":
                cluster.start()
            else:
                cluster.thaw()
        await _wait_recovered(c, world)
        assert (await c.get("/chat/history", headers=world["headers"])).status_code == 200
        await _one_line_per_outage(log_dir, offset)
        app_log = (log_dir / "app.log").read_text(encoding="utf-8")[app_offset:]
        assert app_log.count("database reachable again") == 1


@pytest.mark.slow
async def test_a_locked_sqlite_file_is_a_quick_503_for_writes_and_reads_go_on(
    tmp_path: Path, log_dir: Path, config_dir: Path
) -> None:
    path = tmp_path / "locked.db"
    async with _app(f"sqlite+aiosqlite:///{path}", log_dir, config_dir) as (application, c):
        world = await _world(c, application.state.vektor)
        await asyncio.to_thread(logger.complete)
        offset = _size(log_dir)
        # another process holds the write lock; taken off the event loop, so that a write the
        # app began during the setup (a batched audit or usage row) can finish meanwhile
        holder = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        try:
            await asyncio.to_thread(holder.execute, "BEGIN IMMEDIATE")
            for method, target, body, writes in _requests(world):
                response, elapsed = await _call(c, world, method, target, body)
                assert elapsed < DB_TIMEOUT + MARGIN, (method, target, elapsed)
                assert response.status_code != 500, (method, target)
                if writes:
                    assert response.status_code == 503, (method, target, response.status_code)
                    assert response.json()["code"] == "database_unavailable"
                    assert response.headers["Retry-After"] == "5"
                else:  # WAL readers are not blocked by a writer
                    assert response.status_code == 200, (method, target, response.status_code)
            for method, target, body, writes in _more_requests(world):
                response, elapsed = await _call(c, world, method, target, body)
                assert elapsed < DB_TIMEOUT + MARGIN, (method, target, elapsed)
                status = response.status_code
                assert status == 503 if writes else status < 500, (method, target, status)
            started = time.monotonic()
            assert (await c.get("/health")).status_code == 503  # cannot write: not healthy
            assert time.monotonic() - started < HEALTH_LIMIT
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        await _wait_recovered(c, world)
        renamed = await c.patch(
            f"/chat/history/{world['conversation_id']}",
            json={"title": "renamed"},
            headers=world["headers"],
        )
        assert renamed.status_code == 200
        await _one_line_per_outage(log_dir, offset)
