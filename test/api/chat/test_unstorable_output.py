"""What an upstream sends that no database can store (U+0000, lone surrogates, NaN) is cleaned.

Before, a model or tool answer holding them failed the generation on PostgreSQL, or was
stored in a JSON column and broke every later read of the conversation (history, sync).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.services.tools import Tool, ToolOutcome
from test.api.chat.stubs import StubTools
from test.fakes.llm_upstream import FakeToolCall, Reply
from test.support.sse import stream_chat, text_of


@pytest.fixture
def dirty_tools(stub_tools: StubTools) -> StubTools:
    """The stub tools, answering every call with text no database can store."""
    record = stub_tools.call_tool

    async def call(tool: Tool, arguments: dict[str, Any], **kwargs: Any) -> Any:
        await record(tool, arguments, **kwargs)
        return ToolOutcome("error", "bad\x00 \ud800 result", 1)

    stub_tools.call_tool = call  # type: ignore[method-assign]
    return stub_tools


async def test_unstorable_upstream_text_is_cleaned_and_the_answer_kept(
    live: httpx.AsyncClient, alice: dict[str, Any], upstream: Any, dirty_tools: StubTools
) -> None:
    h = alice["headers"]
    arguments = {"a": "x\x00y", "b\ud800": ["\ud800"], "n": float("nan")}
    upstream.script(
        Reply(tool_calls=[FakeToolCall("stub__fail", arguments, id="call\x00-1")]),
        Reply(tokens=["a\x00b ", "c\ud800d"]),
    )
    events = await stream_chat(live, h, message="hi", model="fake-openai")
    assert events[-1].name == "done", [(e.name, e.data) for e in events]
    assert text_of(events) == "ab c\ufffdd"

    conversation = await live.get(f"/chat/history/{events[0].data['conversation_id']}", headers=h)
    assert conversation.status_code == 200, conversation.text
    answer = conversation.json()["messages"][-1]
    assert answer["content"] == "ab c\ufffdd" and answer["status"] == "complete"
    call = answer["tool_calls"][0]
    assert call["id"] == "call-1"
    assert call["arguments"] == {"a": "xy", "b\ufffd": ["\ufffd"], "n": None}
    assert call["result"] == "bad \ufffd result"
    for path in ("/chat/history", "/sync/changes", "/sync/export"):
        assert (await live.get(path, headers=h)).status_code == 200, path
