"""One round of tool calls: announce each call, run them concurrently, record them in order.

Each call's name is resolved once (`Toolbox.resolve`) and the call goes straight to the
source that knows it. Results become `tool_result` events and the message's tool calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from app.core.text import storable
from app.schemas.events import (
    ChatEventData,
    ChatEventName,
    ToolCallEvent,
    ToolProgressEvent,
    ToolResultEvent,
)
from app.services.llm import ToolCallRequest
from app.services.tools import BoundTool, Toolbox, ToolOutcome

Emit = Callable[[ChatEventName, ChatEventData], None]


async def run_tool_round(
    calls: list[ToolCallRequest],
    *,
    round_no: int,
    toolbox: Toolbox,
    emit: Emit,
    records: list[dict[str, Any]],
) -> list[str]:
    """Announce every call, run them concurrently; append their records to `records`."""
    mine = []
    bound = [toolbox.resolve(call.name) for call in calls]  # once per call
    for call, tool in zip(calls, bound, strict=True):
        server, name = (tool.tool.server, tool.tool.name) if tool else ("", call.name)
        record = {
            "id": call.id,
            "server": server,
            "tool": name,
            "qualified_name": call.name,
            "arguments": call.arguments,
            "status": "error",
            "result": None,
            "duration_ms": 0,
            "round": round_no,
        }
        mine.append(record)
        records.append(record)
        announced: ToolCallEvent = {
            "call_id": call.id,
            "server": server,
            "tool": name,
            "arguments": call.arguments,
        }
        emit("tool_call", announced)
    return list(
        await asyncio.gather(
            *(_run_tool(c, t, r, emit) for c, t, r in zip(calls, bound, mine, strict=True))
        )
    )


async def _run_tool(
    call: ToolCallRequest, tool: BoundTool | None, record: dict[str, Any], emit: Emit
) -> str:
    async def progress(done: float, total: float | None, message: str | None) -> None:
        report: ToolProgressEvent = {
            "call_id": call.id,
            "progress": done,
            "total": total,
            "message": message,
        }
        emit("tool_progress", report)

    outcome = (
        await tool.call(call.arguments, on_progress=progress)
        if tool is not None
        else ToolOutcome.unknown(call.name)
    )
    content = storable(outcome.content)  # every tool source, not only MCP, cleans its text
    result: ToolResultEvent = {
        "call_id": call.id,
        "status": outcome.status,
        "content": content,
        "duration_ms": outcome.duration_ms,
    }
    emit("tool_result", result)
    record.update(status=outcome.status, result=content, duration_ms=outcome.duration_ms)
    return content
