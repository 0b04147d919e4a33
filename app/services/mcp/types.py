"""The values the pool hands to its callers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

ProgressCallback = Callable[[float, float | None, str | None], Awaitable[None]]
AttemptKind = Literal["ok", "tool_error", "rejected", "not_sent", "lost", "timeout"]


@dataclass(frozen=True)
class ToolInfo:
    """One tool as the model sees it."""

    server: str
    name: str
    qualified_name: str
    description: str
    input_schema: dict[str, Any]
    available: bool
    kind: str = "mcp"


@dataclass(frozen=True)
class ToolOutcome:
    """The result of one tool call, as text for the model."""

    status: Literal["ok", "error"]
    content: str
    duration_ms: int


@dataclass(frozen=True, slots=True)
class Attempt:
    """What happened when one replica was asked to run a tool."""

    # not_sent: never reached the server (safe to send elsewhere); lost / timeout: may have
    # run (retried elsewhere only for idempotent tools); rejected: a protocol error or an
    # invalid result; ok / tool_error: a result (is_error or not).

    kind: AttemptKind
    text: str = ""
