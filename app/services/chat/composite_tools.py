"""Several tool sources (the MCP pool, app adapters) offered to the agent loop as one."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from loguru import logger

from app.services.chat.tools import (
    ProgressCallback,
    ToolCallOutcome,
    ToolDescription,
    ToolExecutor,
    ToolRef,
)


class CompositeTools:
    """Merges tool sources in order; on a name clash the earlier source wins."""

    def __init__(self, sources: Sequence[ToolExecutor]) -> None:
        self.sources = list(sources)
        self._warned: set[str] = set()

    def available(self, *, servers: Collection[str] | None) -> list[ToolDescription]:
        """Every source's tools, each qualified name once."""
        seen: set[str] = set()
        merged: list[ToolDescription] = []
        for source in self.sources:
            for tool in source.available(servers=servers):
                if tool.qualified_name in seen:
                    self._warn_clash(tool.qualified_name)
                    continue
                seen.add(tool.qualified_name)
                merged.append(tool)
        return merged

    def _warn_clash(self, name: str) -> None:
        if name not in self._warned:
            self._warned.add(name)
            logger.warning("two tool sources offer {}; the first one is used", name)

    def _source_of(self, qualified_name: str) -> ToolExecutor | None:
        for source in self.sources:
            if source.resolve(qualified_name) is not None:
                return source
        return None

    def resolve(self, qualified_name: str) -> ToolRef | None:
        """The first source's server and tool behind a qualified name."""
        source = self._source_of(qualified_name)
        return source.resolve(qualified_name) if source else None

    async def call(
        self,
        qualified_name: str,
        arguments: dict[str, Any],
        *,
        on_progress: ProgressCallback | None = None,
    ) -> ToolCallOutcome:
        """Route the call to the source that knows the name (never raises for tool failures)."""
        source = self._source_of(qualified_name)
        if source is None:
            return ToolCallOutcome("error", f"Unknown tool: {qualified_name}", 0)
        return await source.call(qualified_name, arguments, on_progress=on_progress)
