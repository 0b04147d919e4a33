"""The MCP pool as the agent loop's tool source."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from app.services.chat.tools import ProgressCallback, ToolCallOutcome, ToolDescription, ToolRef
from app.services.mcp import McpPool


class PoolTools:
    """Offers the pool's available tools and routes calls through it."""

    def __init__(self, pool: McpPool) -> None:
        self.pool = pool

    def available(self, *, servers: Collection[str] | None) -> list[ToolDescription]:
        """Tools of healthy servers, limited to `servers` (None = every enabled server)."""
        return [
            ToolDescription(t.qualified_name, t.description, t.input_schema)
            for t in self.pool.tools(servers=servers)
            if t.available
        ]

    def resolve(self, qualified_name: str) -> ToolRef | None:
        """The server and tool behind a qualified name."""
        info = self.pool.resolve(qualified_name)
        return ToolRef(info.server, info.name) if info else None

    async def call(
        self,
        qualified_name: str,
        arguments: dict[str, Any],
        *,
        on_progress: ProgressCallback | None = None,
    ) -> ToolCallOutcome:
        """Call through the pool (which never raises for tool or server failures)."""
        return await self.pool.call(qualified_name, arguments, on_progress=on_progress)
