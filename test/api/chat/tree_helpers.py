"""Helpers of the conversation-tree tests: any POST that answers with a chat stream."""

from __future__ import annotations

import json
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from test.support.sse import Event


async def post_stream(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], body: Any = None
) -> list[Event]:
    """POST `path` and read every event of the chat stream it answers with."""
    kwargs: dict[str, Any] = {"headers": headers}
    if body is not None:
        kwargs["json"] = body
    events: list[Event] = []
    async with aconnect_sse(client, "POST", path, **kwargs) as source:
        assert source.response.status_code == 200, await source.response.aread()
        async for sse in source.aiter_sse():
            events.append(Event(sse.event, sse.id, json.loads(sse.data)))
    return events


async def history(
    client: httpx.AsyncClient, headers: dict[str, str], cid: str, **params: Any
) -> dict[str, Any]:
    """`GET /chat/history/{cid}` (200 expected)."""
    response = await client.get(f"/chat/history/{cid}", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def contents(conversation: dict[str, Any]) -> list[str]:
    """The texts of a conversation's messages, in order."""
    return [m["content"] for m in conversation["messages"]]
