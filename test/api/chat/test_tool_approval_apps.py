"""Tool approval with the MCP test server (`approval: {"tools": ["add"]}`) on apps of their
own: a timeout, a paused answer that does not block another, a shutdown while waiting, and
a decision taken on another instance behind Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from test.api.chat.approval_helpers import approval_config, decision_path, read_until
from test.conftest import extra_models, two_instances_on_redis
from test.support.apps import REPO_CONFIG, make_settings, served
from test.support.assertions import assert_error
from test.support.auth import register_and_login
from test.support.sse import read_events, stream_chat
from test.support.waiting import eventually

pytestmark = pytest.mark.slow
ADD = '/tool test__add {"a": 20, "b": 22}'
REDIS_DB = 9


@pytest.fixture
def asking_config(tmp_path: Path, fake_llm: Any) -> Iterator[Path]:
    """A CONFIG_DIR whose MCP test server asks before `add`."""
    yield approval_config(tmp_path / "config", REPO_CONFIG, extra_models(fake_llm))


def _settings(database_url: str, log_dir: Path, config: Path, **overrides: Any) -> Any:
    return make_settings(database_url, log_dir, config_dir=config, **overrides)


async def _healthy(client: httpx.AsyncClient) -> bool:
    return bool((await client.get("/health")).json()["status"] == "ok")


async def _ready(application: Any) -> None:
    assert await application.state.vektor.mcp.wait_until_ready(30)


async def test_timeout_denies_and_a_paused_answer_does_not_block_another(
    app: Any, database_url: str, log_dir: Path, asking_config: Path
) -> None:
    settings = _settings(
        database_url,
        log_dir,
        asking_config,
        tool_approval_timeout_seconds=1.0,
        max_concurrent_generations=1,
    )
    async with served(settings) as (application, client):
        await _ready(application)
        h = (await register_and_login(client, "tia"))["headers"]
        async with aconnect_sse(
            client, "POST", "/chat/stream", json={"message": ADD}, headers=h
        ) as source:
            events = await read_until(source, "tool_approval")
            message_id, call_id = events[0].data["message_id"], events[-1].data["call_id"]
            # the paused answer holds no slot: with a cap of one, another answer still runs
            other = await stream_chat(client, h, message="meanwhile")
            assert other[-1].name == "done", other[-1]
            events += await read_events(source)
        decided = next(e.data for e in events if e.name == "tool_approval_decided")
        assert decided["decision"] == "timeout"
        result = next(e.data for e in events if e.name == "tool_result")
        assert result["status"] == "error" and "in time" in result["content"]
        assert events[-1].name == "done"
        late = await client.post(decision_path(message_id, call_id, "approve"), headers=h)
        assert_error(late, 409, "already_decided")


async def test_shutdown_while_waiting_saves_interrupted_with_the_call(
    app: Any, live: httpx.AsyncClient, database_url: str, log_dir: Path, asking_config: Path
) -> None:
    settings = _settings(database_url, log_dir, asking_config)
    async with served(settings) as (application, client):
        await _ready(application)
        user = await register_and_login(client, "rex")
        async with aconnect_sse(
            client, "POST", "/chat/stream", json={"message": ADD}, headers=user["headers"]
        ) as source:
            events = await read_until(source, "tool_approval")
        call_id = events[-1].data["call_id"]
    # the app stopped (a restart) while the call waited: read what was saved
    conversation = events[0].data["conversation_id"]
    response = await live.get(f"/chat/history/{conversation}", headers=user["headers"])
    saved = response.json()["messages"][-1]
    assert saved["status"] == "error"
    call = saved["tool_calls"][0]
    assert (call["id"], call["tool"], call["status"]) == (call_id, "add", "error")
    assert "restarted" in call["result"]
    message_id = events[0].data["message_id"]
    async with aconnect_sse(
        live, "GET", f"/chat/stream/{message_id}", headers=user["headers"]
    ) as source:
        replay = await read_events(source)
    assert replay[-1].name == "error" and replay[-1].data["code"] == "interrupted"


async def test_a_decision_on_another_instance_reaches_the_generation(
    app: Any,
    database_url: str,
    log_dir: Path,
    asking_config: Path,
    private_redis: Any,
) -> None:
    async with two_instances_on_redis(
        database_url=database_url,
        log_dir=log_dir,
        config_dir=asking_config,
        redis_url=private_redis.url(REDIS_DB),
    ) as (a, b):
        for instance in (a, b):  # its MCP test server is connected
            await eventually(
                lambda c=instance: _healthy(c), timeout_s=30, what="the MCP server connected"
            )
        alice = await register_and_login(a, "ada")
        mallory = await register_and_login(b, "mal")
        h = alice["headers"]
        async with aconnect_sse(
            a, "POST", "/chat/stream", json={"message": ADD}, headers=h
        ) as source:
            events = await read_until(source, "tool_approval")
            message_id, call_id = events[0].data["message_id"], events[-1].data["call_id"]
            foreign = await b.post(
                decision_path(message_id, call_id, "approve"), headers=mallory["headers"]
            )
            assert_error(foreign, 404, "not_found")
            approved = await b.post(decision_path(message_id, call_id, "approve"), headers=h)
            assert approved.status_code == 202
            again = await a.post(decision_path(message_id, call_id, "deny"), headers=h)
            assert_error(again, 409, "already_decided")
            events += await read_events(source)
        result = next(e.data for e in events if e.name == "tool_result")
        assert result["status"] == "ok" and float(result["content"]) == 42
        assert events[-1].name == "done"
