"""What a tool source (the MCP pool, app adapters, a test stub) offers the toolbox."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol

from app.services.tools.types import ProgressCallback, Tool, ToolOutcome


class ToolSource(Protocol):
    """A source of tools; the toolbox resolves a name once, then calls the resolved tool."""

    def available(self, *, servers: Collection[str] | None) -> list[Tool]:
        """Tools the model may call, limited to `servers` (None = all enabled)."""
        ...

    def resolve(self, qualified_name: str) -> Tool | None:
        """The tool behind a qualified name, if this source knows it."""
        ...

    async def call_tool(
        self,
        tool: Tool,
        arguments: dict[str, Any],
        *,
        on_progress: ProgressCallback | None = None,
    ) -> ToolOutcome:
        """Run a tool this source resolved; never raises for tool failures (`error` outcomes)."""
        ...


class NoTools:
    """The source used when no tool source is configured."""

    def available(self, *, servers: Collection[str] | None) -> list[Tool]:
        """No tools."""
        return []

    def resolve(self, qualified_name: str) -> Tool | None:
        """Nothing resolves."""
        return None

    async def call_tool(
        self,
        tool: Tool,
        arguments: dict[str, Any],
        *,
        on_progress: ProgressCallback | None = None,
    ) -> ToolOutcome:
        """Every call fails clearly."""
        return ToolOutcome.unknown(tool.qualified_name)
