"""`vektor` extra body: `mcp` runs the server's MCP tools (mcp-server-time) in the agent
loop and streams only the final text; `store` saves the exchange into the user's history."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest

from test.api.chat.test_chat_mcp import mcp_app  # noqa: F401  (fixture)
from test.api.test_api_keys import create_key
from test.support.apps import serve_app
from test.support.auth import register_and_login

TIME_CALL = '/tool time__get_current_time {"timezone": "UTC"}'


@pytest.fixture
async def mcp_sdk(mcp_app: Any) -> AsyncIterator[tuple[openai.AsyncOpenAI, httpx.AsyncClient]]:  # noqa: F811
    """The SDK and a plain client (alice's session) for the MCP-enabled app."""
    async with serve_app(mcp_app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        alice = await register_and_login(http, "alice")
        key = await create_key(http, alice)
        http.headers.update(alice["headers"])
        sdk = openai.AsyncOpenAI(base_url=url + "/v1", api_key=key["key"], max_retries=0)
        async with sdk:
            yield sdk, http


async def test_mcp_tool_runs_on_the_server(
    mcp_sdk: tuple[openai.AsyncOpenAI, httpx.AsyncClient],
) -> None:
    sdk, http = mcp_sdk
    stream = await sdk.chat.completions.create(
        model="vektor-echo",
        messages=[{"role": "user", "content": TIME_CALL}],
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"vektor": {"mcp": True}},
    )
    chunks = [chunk async for chunk in stream]
    conversation_id = stream.response.headers["x-vektor-conversation-id"]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Tool time__get_current_time returned: ")
    assert '"timezone": "UTC"' in text or "UTC" in text
    assert not any(c.choices and c.choices[0].delta.tool_calls for c in chunks)  # invisible
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    # mcp answers are saved like any chat turn (README: Decisions)
    history = (await http.get("/chat/history")).json()["items"]
    assert [item["id"] for item in history] == [conversation_id]
    read = (await http.get(f"/chat/history/{conversation_id}")).json()
    (call,) = read["messages"][-1]["tool_calls"]
    assert (call["server"], call["tool"], call["status"]) == ("time", "get_current_time", "ok")


async def test_store_appears_in_history_and_continues(
    mcp_sdk: tuple[openai.AsyncOpenAI, httpx.AsyncClient],
) -> None:
    sdk, http = mcp_sdk
    first = await sdk.chat.completions.create(
        model="vektor-echo",
        messages=[{"role": "system", "content": "terse"}, {"role": "user", "content": "hi"}],
        extra_body={"vektor": {"store": True}},
    )
    assert first.choices[0].message.content == "Echo: hi"
    stored: Any = first.model_extra or {}
    conversation_id = stored["vektor"]["conversation_id"]
    history = (await http.get("/chat/history")).json()["items"]
    assert [item["id"] for item in history] == [conversation_id]
    second = await sdk.chat.completions.create(
        model="vektor-echo",
        messages=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Echo: hi"},
            {"role": "user", "content": "again"},
        ],
        extra_body={"vektor": {"store": True, "conversation_id": conversation_id}},
    )
    assert second.choices[0].message.content == "Echo: again"
    read = (await http.get(f"/chat/history/{conversation_id}")).json()
    assert [(m["role"], m["content"]) for m in read["messages"]] == [
        ("user", "hi"),
        ("assistant", "Echo: hi"),
        ("user", "again"),
        ("assistant", "Echo: again"),
    ]


async def test_plain_requests_store_nothing(
    mcp_sdk: tuple[openai.AsyncOpenAI, httpx.AsyncClient],
) -> None:
    sdk, http = mcp_sdk
    await sdk.chat.completions.create(
        model="vektor-echo", messages=[{"role": "user", "content": "not kept"}]
    )
    assert (await http.get("/chat/history")).json()["items"] == []


async def test_vektor_refusals(mcp_sdk: tuple[openai.AsyncOpenAI, httpx.AsyncClient]) -> None:
    sdk, _ = mcp_sdk
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk.chat.completions.create(
            model="vektor-echo",
            messages=[{"role": "user", "content": "hi"}],
            tools=[{"type": "function", "function": {"name": "f"}}],
            extra_body={"vektor": {"mcp": True}},
        )
    assert caught.value.param == "tools"
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk.chat.completions.create(
            model="vektor-echo",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"vektor": {"store": "yes", "colour": 1}},
        )
    with pytest.raises(openai.NotFoundError):
        await sdk.chat.completions.create(
            model="vektor-echo",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"vektor": {"store": True, "conversation_id": str(uuid.uuid4())}},
        )
