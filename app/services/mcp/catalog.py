"""The tool catalog: every server's tools under unique `<server>__<tool>` names."""

from __future__ import annotations

from collections.abc import Iterable

from loguru import logger
from mcp import types

from app.services.mcp.config import ServerConfig
from app.services.tools import Tool, asks_first
from app.services.tools.naming import qualified_name


def permitted(server: ServerConfig, tool: str) -> bool:
    """Whether the allow/deny lists let the model see this tool."""
    if server.allow_tools is not None and tool not in server.allow_tools:
        return False
    return tool not in server.deny_tools


class Catalog:
    """Qualified name → tool, rebuilt whenever a server's listing changes."""

    def __init__(self) -> None:
        self.entries: dict[str, Tool] = {}
        self.by_server: dict[str, list[Tool]] = {}
        self._warned: set[tuple[str, str, str]] = set()

    def rebuild(self, listings: Iterable[tuple[ServerConfig, list[types.Tool]]]) -> None:
        """Recompute from listings in config order; the first holder of a name keeps it."""
        entries: dict[str, Tool] = {}
        by_server: dict[str, list[Tool]] = {}
        for server, tools in listings:
            mine = by_server.setdefault(server.name, [])
            for tool in tools:
                if not permitted(server, tool.name):
                    continue
                qualified = qualified_name(server.name, tool.name)
                holder = entries.get(qualified)
                if holder is not None:
                    self._warn_collision(qualified, holder, server.name, tool.name)
                    continue
                entry = Tool(
                    server=server.name,
                    name=tool.name,
                    qualified_name=qualified,
                    description=tool.description or tool.title or "",
                    input_schema=dict(tool.input_schema or {"type": "object"}),
                    approval=asks_first(server.approval, tool.name),
                )
                entries[qualified] = entry
                mine.append(entry)
        self.entries, self.by_server = entries, by_server

    def _warn_collision(self, qualified: str, holder: Tool, server: str, tool: str) -> None:
        """Log a rejected duplicate once, not on every rebuild."""
        key = (qualified, server, tool)
        if key in self._warned:
            return
        self._warned.add(key)
        logger.warning(
            "MCP tool {!r} of server {!r} is not offered: its name {!r} is already taken by "
            "tool {!r} of server {!r}",
            tool,
            server,
            qualified,
            holder.name,
            holder.server,
        )
