"""One round of tool calls: announce each call, run them concurrently, record them in order.

Each call's name is resolved once (`Toolbox.resolve`) and the call goes straight to the
source that knows it. Results become `tool_result` events and the message's tool calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from app.core.text import storable
from app.schemas.events import (
    ChatEventData,
    ChatEventName,
    ToolCallEvent,
    ToolProgressEvent,
    ToolResultEvent,
)
from app.services.chat.approval_gate import ApprovalGate
from app.services.llm import ToolCallRequest
from app.services.tools import BoundTool, Toolbox, ToolOutcome
from app.services.tools.render import image_note
from app.services.tools.types import ToolImage

Emit = Callable[[ChatEventName, ChatEventData], None]
# stores a tool's image as a file of the user: its attachment snapshot, or None if refused
KeepImage = Callable[[str, ToolImage], Awaitable[dict[str, Any] | None]]
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


async def run_tool_round(
    calls: list[ToolCallRequest],
    *,
    round_no: int,
    toolbox: Toolbox,
    emit: Emit,
    records: list[dict[str, Any]],
    keep_image: KeepImage | None = None,
    attachments: list[dict[str, Any]] | None = None,
    gate: ApprovalGate | None = None,
) -> list[str]:
    """Announce every call, run them concurrently; append their records to `records` (and
    the images they returned, stored by `keep_image`, to `attachments`). A call `gate` says
    needs approval waits for it; the others run meanwhile."""
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
    kept: list[list[dict[str, Any]]] = [[] for _ in calls]
    results = await asyncio.gather(
        *(
            _run_tool(c, t, r, emit, keep_image, k, gate)
            for c, t, r, k in zip(calls, bound, mine, kept, strict=True)
        )
    )
    if attachments is not None:
        attachments.extend(item for images in kept for item in images)
    return list(results)


async def _keep_images(
    call: ToolCallRequest, outcome: ToolOutcome, keep_image: KeepImage, kept: list[dict[str, Any]]
) -> str:
    """Store each image as a file attached to the answer; the text keeps a short note."""
    content = outcome.content
    for number, image in enumerate(outcome.images, start=1):
        extension = _EXTENSIONS.get(image.mime_type, "img")
        stored = await keep_image(f"{call.name}-{number}.{extension}", image)
        if stored is None:
            continue  # not an image we take: the text describes it as before
        kept.append(stored)
        described = image_note(image.mime_type, f"{len(image.data)} bytes")
        size = f"{stored.get('width')}x{stored.get('height')}"
        shown = f"[image {stored['name']} ({size}): shown to the user as an attachment]"
        content = content.replace(described, shown, 1)
    return content


async def _run_tool(
    call: ToolCallRequest,
    tool: BoundTool | None,
    record: dict[str, Any],
    emit: Emit,
    keep_image: KeepImage | None,
    kept: list[dict[str, Any]],
    gate: ApprovalGate | None = None,
) -> str:
    async def progress(done: float, total: float | None, message: str | None) -> None:
        report: ToolProgressEvent = {
            "call_id": call.id,
            "progress": done,
            "total": total,
            "message": message,
        }
        emit("tool_progress", report)

    if tool is None:
        outcome = ToolOutcome.unknown(call.name)
    elif gate is not None and gate.needs(tool.tool):
        decision = await gate.ask(call, tool.tool, record)
        outcome = (
            await tool.call(call.arguments, on_progress=progress)
            if decision.outcome == "approved"
            else gate.refusal(decision)
        )
    else:
        outcome = await tool.call(call.arguments, on_progress=progress)
    text = outcome.content
    if outcome.images and keep_image is not None:
        text = await _keep_images(call, outcome, keep_image, kept)
    content = storable(text)  # every tool source, not only MCP, cleans its text
    result: ToolResultEvent = {
        "call_id": call.id,
        "status": outcome.status,
        "content": content,
        "duration_ms": outcome.duration_ms,
    }
    emit("tool_result", result)
    record.update(status=outcome.status, result=content, duration_ms=outcome.duration_ms)
    return content
