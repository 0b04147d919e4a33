"""Several tool sources (the MCP pool, app adapters) offered to the agent loop as one."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from loguru import logger

from app.services.tools.source import ToolSource
from app.services.tools.types import ProgressCallback, Tool, ToolOutcome


@dataclass(frozen=True, slots=True)
class BoundTool:
    """A resolved tool and the source that runs it: a call goes straight to that source."""

    tool: Tool
    source: ToolSource

    async def call(
        self, arguments: dict[str, Any], *, on_progress: ProgressCallback | None = None
    ) -> ToolOutcome:
        """Run the tool (never raises for tool failures)."""
        return await self.source.call_tool(self.tool, arguments, on_progress=on_progress)


class Toolbox:
    """Merges tool sources in order; on a name clash the earlier source wins."""

    # tool approval sits between `resolve` and `BoundTool.call`: `Tool.approval` carries the
    # source's policy (approval.py), the chat's approval gate asks the user before the call

    def __init__(self, sources: Sequence[ToolSource]) -> None:
        self.sources = list(sources)
        self._warned: set[str] = set()

    def available(self, *, servers: Collection[str] | None) -> list[Tool]:
        """Every source's tools, each qualified name once."""
        seen: set[str] = set()
        merged: list[Tool] = []
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

    def resolve(self, qualified_name: str) -> BoundTool | None:
        """The first source's tool behind a qualified name, bound to that source."""
        for source in self.sources:
            tool = source.resolve(qualified_name)
            if tool is not None:
                return BoundTool(tool, source)
        return None

    async def call(
        self,
        qualified_name: str,
        arguments: dict[str, Any],
        *,
        on_progress: ProgressCallback | None = None,
    ) -> ToolOutcome:
        """Resolve and run a tool by name (never raises for tool failures)."""
        bound = self.resolve(qualified_name)
        if bound is None:
            return ToolOutcome.unknown(qualified_name)
        return await bound.call(arguments, on_progress=on_progress)
