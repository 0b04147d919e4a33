"""What the agent loop needs from a tool source (the MCP pool, adapters, or a test stub)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Protocol

from app.services.mcp.types import ProgressCallback as ProgressCallback
from app.services.mcp.types import ToolOutcome

# every tool source (MCP pool, adapters, test stubs) reports with the pool's result type
ToolCallOutcome = ToolOutcome


@dataclass(frozen=True, slots=True)
class ToolRef:
    """Where a qualified tool name points."""

    server: str
    tool: str


@dataclass(frozen=True, slots=True)
class ToolDescription:
    """A tool offered to the model."""

    qualified_name: str
    description: str
    input_schema: dict[str, Any]


class ToolExecutor(Protocol):
    """A source of tools for the agent loop."""

    def available(self, *, servers: Collection[str] | None) -> list[ToolDescription]:
        """Tools the model may call, limited to `servers` (None = all enabled)."""
        ...

    def resolve(self, qualified_name: str) -> ToolRef | None:
        """The server and tool behind a qualified name, if known."""
        ...

    async def call(
        self,
        qualified_name: str,
        arguments: dict[str, Any],
        *,
        on_progress: ProgressCallback | None = None,
    ) -> ToolCallOutcome:
        """Run a tool; never raises for tool failures (they become `error` outcomes)."""
        ...


class NoTools:
    """The executor used when no tool source is configured."""

    def available(self, *, servers: Collection[str] | None) -> list[ToolDescription]:
        """No tools."""
        return []

    def resolve(self, qualified_name: str) -> ToolRef | None:
        """Nothing resolves."""
        return None

    async def call(
        self,
        qualified_name: str,
        arguments: dict[str, Any],
        *,
        on_progress: ProgressCallback | None = None,
    ) -> ToolCallOutcome:
        """Every call fails clearly."""
        return ToolCallOutcome("error", f"Unknown tool: {qualified_name}", 0)
