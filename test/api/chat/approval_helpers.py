"""Tool-approval test helpers: a tool source whose `ask__add` waits for approval, a config
directory whose MCP test server asks before `add`, and reading a stream up to an event."""

from __future__ import annotations

import json
import sys
from collections.abc import Collection
from dataclasses import replace
from pathlib import Path
from typing import Any

from app.services.tools import ProgressCallback, Tool, ToolOutcome
from test.api.chat.stubs import StubTools
from test.support.sse import Event, read_events

TEST_SERVER = Path(__file__).resolve().parents[2] / "fakes" / "mcp_test_server.py"


class AskingTools(StubTools):
    """`ask__add` (asks first) and `ask__fail` (runs at once): the stub's tools as `ask`."""

    def available(self, *, servers: Collection[str] | None) -> list[Tool]:
        """Both tools."""
        return [t for name in ("add", "fail") if (t := self.resolve(f"ask__{name}"))]

    def resolve(self, qualified_name: str) -> Tool | None:
        """`ask__x` → the stub's `stub__x`, asking first for `add`."""
        if not qualified_name.startswith("ask__"):
            return None
        tool = super().resolve(qualified_name.replace("ask__", "stub__", 1))
        assert tool is not None
        name = tool.name
        return replace(tool, server="ask", qualified_name=qualified_name, approval=name == "add")

    async def call_tool(
        self,
        tool: Tool,
        arguments: dict[str, Any],
        *,
        on_progress: ProgressCallback | None = None,
    ) -> ToolOutcome:
        """Run it as the stub's tool of the same name."""
        stub = replace(tool, qualified_name=f"stub__{tool.name}")
        return await super().call_tool(stub, arguments, on_progress=on_progress)


def approval_config(directory: Path, shipped: Path, extra_models: list[dict[str, Any]]) -> Path:
    """A CONFIG_DIR: the models of `shipped` plus `extra_models`; the MCP test server as
    `test`, whose `add` waits for approval."""
    directory.mkdir(parents=True, exist_ok=True)
    models = json.loads((shipped / "model_configs.json").read_text())
    models["models"] += extra_models
    (directory / "model_configs.json").write_text(json.dumps(models))
    server = {
        "transport": "stdio",
        "command": sys.executable,
        "args": [str(TEST_SERVER), "--transport", "stdio", "--name", "T"],
        "timeout_s": 20,
        "health_interval_s": 1,
        "approval": {"tools": ["add"]},
    }
    (directory / "mcp_servers.json").write_text(json.dumps({"servers": {"test": server}}))
    return directory


async def read_until(source: Any, name: str, seen: list[Event] | None = None) -> list[Event]:
    """Read events up to and including the first `name` (appended to `seen` if given)."""
    events = seen if seen is not None else []
    while True:
        batch = await read_events(source, 1)
        assert batch, f"the stream ended before a {name!r} event: {[e.name for e in events]}"
        events.append(batch[0])
        if batch[0].name == name:
            return events


def decision_path(message_id: str, call_id: str, verb: str) -> str:
    """`/chat/stream/{message_id}/tools/{call_id}/{approve|deny}`."""
    return f"/chat/stream/{message_id}/tools/{call_id}/{verb}"
