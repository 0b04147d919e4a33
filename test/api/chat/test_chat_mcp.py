"""Full chat turns with real MCP servers through the pool: echo, OpenAI and Anthropic upstreams,
and a cancel that stops a running tool call."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from httpx_sse import aconnect_sse

from app.main import create_app
from test.conftest import extra_models
from test.fakes.llm_upstream import FakeToolCall, Reply
from test.support.apps import REPO_CONFIG, make_settings, serve_app
from test.support.auth import register_and_login
from test.support.sse import Event, names, stream_chat, text_of

TEST_SERVER = Path(__file__).resolve().parents[2] / "fakes" / "mcp_test_server.py"


@pytest.fixture
async def mcp_app(
    app: Any, database_url: str, log_dir: Path, fake_llm: Any, tmp_path: Path
) -> AsyncIterator[Any]:
    """An app whose pool runs mcp-server-time and our test server over stdio."""
    shipped = json.loads((REPO_CONFIG / "model_configs.json").read_text())
    shipped["models"] += extra_models(fake_llm)
    (tmp_path / "model_configs.json").write_text(json.dumps(shipped))
    servers = {
        "time": json.loads((REPO_CONFIG / "mcp_servers.json").read_text())["servers"]["time"],
        "test": {
            "transport": "stdio",
            "command": sys.executable,
            "args": [str(TEST_SERVER), "--transport", "stdio", "--name", "T"],
            "timeout_s": 20,
            "health_interval_s": 1,
        },
    }
    (tmp_path / "mcp_servers.json").write_text(json.dumps({"servers": servers}))
    application = create_app(make_settings(database_url, log_dir, config_dir=tmp_path))
    async with LifespanManager(application, startup_timeout=60, shutdown_timeout=60):
        assert await application.state.vektor.mcp.wait_until_ready(30)
        yield application


@pytest.fixture
async def mcp_client(mcp_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A real-socket client of the MCP-enabled app."""
    async with serve_app(mcp_app) as url, httpx.AsyncClient(base_url=url, timeout=30) as c:
        yield c


async def test_echo_calls_mcp_server_time(mcp_client: httpx.AsyncClient) -> None:
    user = await register_and_login(mcp_client, "carol")
    events = await stream_chat(
        mcp_client,
        user["headers"],
        message='/tool time__get_current_time {"timezone": "UTC"}',
    )
    call = next(e for e in events if e.name == "tool_call").data
    assert (call["server"], call["tool"]) == ("time", "get_current_time")
    result = next(e for e in events if e.name == "tool_result").data
    assert result["status"] == "ok" and "UTC" in result["content"]
    assert names(events)[-1] == "done"
    assert "UTC" in text_of(events)


async def test_openai_and_anthropic_turns_use_pool_tools(
    mcp_client: httpx.AsyncClient, fake_llm: Any
) -> None:
    user = await register_and_login(mcp_client, "dave")
    fake_llm.requests.clear()
    fake_llm.script(
        Reply(tool_calls=[FakeToolCall("test__add", {"a": 2, "b": 3}, id="c1")]),
        Reply.text("It is 5."),
    )
    events = await stream_chat(mcp_client, user["headers"], message="2+3", model="fake-openai")
    result = next(e for e in events if e.name == "tool_result").data
    assert result["status"] == "ok" and float(result["content"]) == 5
    offered = {t["function"]["name"] for t in fake_llm.requests[0].json["tools"]}
    assert {"time__get_current_time", "test__add"} <= offered

    fake_llm.script(
        Reply(
            tool_calls=[
                FakeToolCall(
                    "time__convert_time",
                    {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"},
                    id="toolu_9",
                )
            ]
        ),
        Reply.text("Noon UTC is 21:00 in Tokyo."),
    )
    events = await stream_chat(
        mcp_client, user["headers"], message="convert", model="fake-anthropic"
    )
    result = next(e for e in events if e.name == "tool_result").data
    assert result["status"] == "ok" and "21:00" in result["content"]
    tool_block = fake_llm.requests[-1].json["messages"][-1]["content"][0]
    assert tool_block["type"] == "tool_result" and tool_block["tool_use_id"] == "toolu_9"


async def test_unknown_tool_and_tool_errors_reach_the_model(
    mcp_client: httpx.AsyncClient,
) -> None:
    user = await register_and_login(mcp_client, "erin")
    events = await stream_chat(mcp_client, user["headers"], message="/tool test__nope {}")
    result = next(e for e in events if e.name == "tool_result").data
    assert result["status"] == "error" and names(events)[-1] == "done"


async def test_cancel_stops_a_running_tool_call(mcp_client: httpx.AsyncClient) -> None:
    user = await register_and_login(mcp_client, "frank")
    h = user["headers"]
    started = time.monotonic()
    events: list[Event] = []
    async with aconnect_sse(
        mcp_client,
        "POST",
        "/chat/stream",
        json={"message": '/tool test__slow {"seconds": 20}'},
        headers=h,
    ) as source:
        iterator = source.aiter_sse()
        async for sse in iterator:
            events.append(Event(sse.event, sse.id, json.loads(sse.data)))
            if sse.event == "tool_call":
                await asyncio.sleep(0.3)
                cancel = await mcp_client.post(
                    f"/chat/stream/{events[0].data['message_id']}/cancel", headers=h
                )
                assert cancel.status_code == 202
    assert events[-1].name == "done" and events[-1].data["finish_reason"] == "cancelled"
    assert time.monotonic() - started < 15


async def test_a_tool_image_is_stored_and_attached_to_the_answer(
    mcp_client: httpx.AsyncClient,
) -> None:
    user = await register_and_login(mcp_client, "iris")
    events = await stream_chat(
        mcp_client, user["headers"], message='/tool test__picture {"width": 80, "height": 40}'
    )
    result = next(e for e in events if e.name == "tool_result").data
    note = "[image test__picture-1.png (80x40): shown to the user as an attachment]"
    assert result["status"] == "ok" and note in result["content"]
    assert "bytes]" not in result["content"]
    assert note in text_of(events)  # the model read the note (echo repeats tool results)
    files = (await mcp_client.get("/files", headers=user["headers"])).json()["items"]
    assert [(f["name"], f["kind"], f["width"], f["height"]) for f in files] == [
        ("test__picture-1.png", "image", 80, 40)
    ]
    cid = events[0].data["conversation_id"]
    conversation = (await mcp_client.get(f"/chat/history/{cid}", headers=user["headers"])).json()
    answer = conversation["messages"][-1]
    assert [(a["id"], a["kind"], a["deleted"]) for a in answer["attachments"]] == [
        (files[0]["id"], "image", False)
    ]
    # an "image" that is not one stays a description and is never stored
    mixed = await stream_chat(mcp_client, user["headers"], message="/tool test__mixed {}")
    mixed_result = next(e for e in mixed if e.name == "tool_result").data
    assert "[image: image/png, 12 bytes]" in mixed_result["content"]
    assert len((await mcp_client.get("/files", headers=user["headers"])).json()["items"]) == 1
