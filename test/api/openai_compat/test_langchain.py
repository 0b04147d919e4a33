"""A third-party OpenAI client: LangChain's `ChatOpenAI` streaming from /v1 (sync and async),
with a client tool bound the LangChain way."""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_openai import ChatOpenAI


def _chat(live_url: str, api_key: dict[str, Any], **options: Any) -> ChatOpenAI:
    return ChatOpenAI(
        model="vektor-echo",
        base_url=live_url + "/v1",
        api_key=api_key["key"],
        max_retries=0,
        **options,
    )


async def test_langchain_streams(live_url: str, api_key: dict[str, Any]) -> None:
    chat = _chat(live_url, api_key, stream_usage=True)

    def stream() -> list[Any]:
        return list(chat.stream("streamed by langchain"))

    pieces = await asyncio.to_thread(stream)
    assert "".join(str(p.content) for p in pieces) == "Echo: streamed by langchain"
    assert len([p for p in pieces if p.content]) >= 3  # word by word, not one block
    usage = [p.usage_metadata for p in pieces if p.usage_metadata]
    assert usage and usage[-1]["output_tokens"] == 4
    chunks = [chunk async for chunk in chat.astream("and async")]
    assert "".join(str(c.content) for c in chunks) == "Echo: and async"


async def test_langchain_tool_call(live_url: str, api_key: dict[str, Any]) -> None:
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return "sunny"

    chat = _chat(live_url, api_key).bind_tools([get_weather])
    message = await chat.ainvoke('/tool get_weather {"city": "Bern"}')
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [
        ("get_weather", {"city": "Bern"})
    ]
