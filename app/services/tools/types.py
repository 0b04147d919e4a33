"""The values every tool source speaks: one tool description, one call outcome."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

ProgressCallback = Callable[[float, float | None, str | None], Awaitable[None]]
OutcomeStatus = Literal["ok", "error"]


@dataclass(frozen=True, slots=True)
class Tool:
    """One tool: who serves it, the name the model calls it by, and what it takes."""

    server: str  # the MCP server or app adapter
    name: str  # the tool's own name at its server
    qualified_name: str  # `<server>__<tool>` (see `naming.qualified_name`)
    description: str
    input_schema: dict[str, Any]
    available: bool = True  # its server can take a call right now
    kind: str = "mcp"  # "mcp" or "adapter"
    approval: bool = False  # its source's `approval` policy makes a call wait for the user


@dataclass(frozen=True, slots=True)
class ToolImage:
    """An image a tool returned (MCP image content), decoded."""

    mime_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """The result of one tool call, as text for the model (with any images it returned:
    the chat stores them as the user's files and attaches them to the answer)."""

    status: OutcomeStatus
    content: str
    duration_ms: int
    images: tuple[ToolImage, ...] = ()

    @classmethod
    def timed(
        cls, status: str, content: str, started: float, images: tuple[ToolImage, ...] = ()
    ) -> ToolOutcome:
        """An outcome whose duration runs from `started` (a `time.monotonic()`) until now."""
        duration = int((time.monotonic() - started) * 1000)
        return cls("ok" if status == "ok" else "error", content, duration, images)

    @classmethod
    def unknown(cls, qualified_name: str) -> ToolOutcome:
        """The outcome of calling a name no source knows."""
        return cls("error", f"Unknown tool: {qualified_name}", 0)
