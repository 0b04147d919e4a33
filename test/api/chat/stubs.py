"""A tool source for chat tests that records how it was called."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

from app.services.chat.tools import (
    ProgressCallback,
    ToolCallOutcome,
    ToolDescription,
    ToolRef,
)

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

    def available(self, *, servers: Collection[str] | None) -> list[ToolDescription]:
        """The stub tools, unless `stub` is filtered out."""
        if servers is not None and "stub" not in servers:
            return []
        return [
            ToolDescription("stub__add", "Add two numbers", SCHEMA),
            ToolDescription("stub__fail", "Always fails", SCHEMA),
        ]

    def resolve(self, qualified_name: str) -> ToolRef | None:
        """`stub__x` → server stub, tool x."""
        if not qualified_name.startswith("stub__"):
            return None
        return ToolRef("stub", qualified_name.removeprefix("stub__"))

    async def call(
        self,
        qualified_name: str,
        arguments: dict[str, Any],
        *,
        on_progress: ProgressCallback | None = None,
    ) -> ToolCallOutcome:
        """Add, fail, or report an unknown tool."""
        self.calls.append((qualified_name, arguments))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if on_progress is not None:
                await on_progress(0.5, 1.0, "halfway")
            await asyncio.sleep(self.delay)
            if qualified_name == "stub__add":
                total = float(arguments.get("a", 0)) + float(arguments.get("b", 0))
                return ToolCallOutcome("ok", f"{total:g}", 3)
            if qualified_name == "stub__fail":
                return ToolCallOutcome("error", "the tool failed on purpose", 1)
            return ToolCallOutcome("error", f"Unknown tool: {qualified_name}", 0)
        finally:
            self.in_flight -= 1
