"""A tool source for chat tests that records how it was called."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

from app.services.tools import ProgressCallback, Tool, ToolOutcome

SCHEMA = {
    "type": "object",
    "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
    "required": ["a", "b"],
}


class StubTools:
    """Tools `stub__add` (with progress), `stub__slow_add` and `stub__fail`."""

    def __init__(self, *, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def available(self, *, servers: Collection[str] | None) -> list[Tool]:
        """The stub tools, unless `stub` is filtered out."""
        if servers is not None and "stub" not in servers:
            return []
        return [
            _tool("add", "Add two numbers"),
            _tool("fail", "Always fails"),
        ]

    def resolve(self, qualified_name: str) -> Tool | None:
        """`stub__x` → server stub, tool x."""
        if not qualified_name.startswith("stub__"):
            return None
        return _tool(qualified_name.removeprefix("stub__"), "")

    async def call_tool(
        self,
        tool: Tool,
        arguments: dict[str, Any],
        *,
        on_progress: ProgressCallback | None = None,
    ) -> ToolOutcome:
        """Add, fail, or report an unknown tool."""
        qualified_name = tool.qualified_name
        self.calls.append((qualified_name, arguments))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if on_progress is not None:
                await on_progress(0.5, 1.0, "halfway")
            await asyncio.sleep(self.delay)
            if qualified_name == "stub__add":
                total = float(arguments.get("a", 0)) + float(arguments.get("b", 0))
                return ToolOutcome("ok", f"{total:g}", 3)
            if qualified_name == "stub__fail":
                return ToolOutcome("error", "the tool failed on purpose", 1)
            return ToolOutcome("error", f"Unknown tool: {qualified_name}", 0)
        finally:
            self.in_flight -= 1


def _tool(name: str, description: str) -> Tool:
    return Tool("stub", name, f"stub__{name}", description, SCHEMA)
