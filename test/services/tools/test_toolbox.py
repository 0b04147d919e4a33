"""The toolbox: sources merged in order, each call resolved once and sent to its source."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import replace
from typing import Any

from app.services.tools import NoTools, ProgressCallback, Tool, Toolbox, ToolOutcome

SCHEMA: dict[str, Any] = {"type": "object"}


class CountingSource:
    """A source with fixed tools that counts how often it resolves and runs them."""

    def __init__(self, server: str, *names: str) -> None:
        self.tools = [Tool(server, n, f"{server}__{n}", f"{n} of {server}", SCHEMA) for n in names]
        self.resolved: list[str] = []
        self.ran: list[tuple[Tool, dict[str, Any]]] = []

    def available(self, *, servers: Collection[str] | None) -> list[Tool]:
        """Every tool unless the server is filtered out."""
        return [t for t in self.tools if servers is None or t.server in servers]

    def resolve(self, qualified_name: str) -> Tool | None:
        """The tool by name, counting each lookup."""
        self.resolved.append(qualified_name)
        return next((t for t in self.tools if t.qualified_name == qualified_name), None)

    async def call_tool(
        self,
        tool: Tool,
        arguments: dict[str, Any],
        *,
        on_progress: ProgressCallback | None = None,
    ) -> ToolOutcome:
        """Report progress once and answer with the tool's server."""
        self.ran.append((tool, arguments))
        if on_progress is not None:
            await on_progress(1.0, 1.0, "done")
        return ToolOutcome("ok", f"{tool.server}:{tool.name}", 1)


async def test_a_call_resolves_once_and_reaches_only_its_source() -> None:
    first, second = CountingSource("a", "x"), CountingSource("b", "y")
    toolbox = Toolbox([first, second])
    bound = toolbox.resolve("b__y")
    assert bound is not None and bound.source is second
    assert (bound.tool.server, bound.tool.name) == ("b", "y")
    reports: list[tuple[float, float | None, str | None]] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        reports.append((done, total, message))

    outcome = await bound.call({"q": 1}, on_progress=progress)
    assert outcome == ToolOutcome("ok", "b:y", 1)
    assert first.resolved == ["b__y"] and second.resolved == ["b__y"]  # one lookup each
    assert first.ran == [] and second.ran == [(bound.tool, {"q": 1})]
    assert reports == [(1.0, 1.0, "done")]


async def test_call_by_name_resolves_once() -> None:
    source = CountingSource("a", "x")
    outcome = await Toolbox([source]).call("a__x", {})
    assert outcome.content == "a:x" and source.resolved == ["a__x"]


async def test_an_unknown_name_is_an_error_outcome_not_an_exception() -> None:
    toolbox = Toolbox([NoTools(), CountingSource("a", "x")])
    assert toolbox.resolve("nobody__nothing") is None
    unknown = await toolbox.call("nobody__nothing", {})
    assert unknown == ToolOutcome("error", "Unknown tool: nobody__nothing", 0)


def test_the_first_source_wins_a_clash_and_servers_filter() -> None:
    first, clash = CountingSource("a", "x", "y"), CountingSource("a", "y", "z")
    clash.tools[0] = replace(clash.tools[0], description="shadowed")
    toolbox = Toolbox([first, clash])
    assert [t.qualified_name for t in toolbox.available(servers=None)] == [
        "a__x",
        "a__y",
        "a__z",
    ]
    assert next(t for t in toolbox.available(servers=None) if t.name == "y").description == (
        "y of a"
    )
    assert toolbox.available(servers={"b"}) == []
    bound = toolbox.resolve("a__y")
    assert bound is not None and bound.source is first


def test_timed_outcomes_measure_from_the_start_and_normalise_the_status() -> None:
    outcome = ToolOutcome.timed("tool_error", "boom", time.monotonic() - 0.25)
    assert outcome.status == "error" and outcome.content == "boom"
    assert 250 <= outcome.duration_ms < 10_000
    assert ToolOutcome.timed("ok", "", time.monotonic()).status == "ok"
