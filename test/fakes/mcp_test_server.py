"""A small MCP server for tests and benchmarks, built with the mcp 2.x `MCPServer` API.

Run: `python test/fakes/mcp_test_server.py --transport stdio|streamable-http|sse
[--port N] [--name REPLICA]`. Tools: echo, add, whoami, slow (progress; counts
cancellations), stats, flaky, big, fail (is_error), crash, garbage (a reply that is not
valid JSON; kills a stdio server), noise (a non-JSON line on stdout), mixed
(image/resource/control characters), picture (a real PNG), add_tool (list_changed),
request_info (the query string and Authorization header of the HTTP request that carried
the call).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import os
import sys
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import EmbeddedResource, ImageContent, TextContent, TextResourceContents
from PIL import Image


def build_server(name: str) -> MCPServer:
    """The test server; `name` identifies the replica in `whoami` answers."""
    server = MCPServer("vektor-test", version="1.0")
    calls = {"flaky": 0, "slow_started": 0, "slow_cancelled": 0, "slow_completed": 0}

    @server.tool()
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    @server.tool()
    def add(a: float, b: float) -> float:
        """Add two numbers."""
        return a + b

    @server.tool()
    def whoami() -> str:
        """Name of the replica that answered."""
        return name

    @server.tool()
    async def slow(seconds: float, ctx: Context, steps: int = 4) -> str:
        """Sleep for `seconds`, reporting progress `steps` times."""
        calls["slow_started"] += 1
        try:
            for step in range(steps):
                await ctx.report_progress(step, steps, f"step {step + 1} of {steps}")
                await asyncio.sleep(seconds / max(1, steps))
        except asyncio.CancelledError:
            calls["slow_cancelled"] += 1
            raise
        calls["slow_completed"] += 1
        return f"{name} slept {seconds}s"

    @server.tool()
    def stats() -> dict[str, int]:
        """Counters of this replica (slow calls started, cancelled, completed; flaky calls)."""
        return {**calls, "pid": os.getpid()}

    @server.tool()
    def flaky(every: int = 2) -> str:
        """Fail (is_error) on every `every`-th call."""
        calls["flaky"] += 1
        if calls["flaky"] % every == 0:
            raise ToolError(f"flaky failure #{calls['flaky']}")
        return f"ok #{calls['flaky']}"

    @server.tool()
    def request_info(ctx: Context) -> dict[str, str]:
        """The query string and Authorization header the call arrived with (HTTP transports)."""
        request = ctx.request_context.request
        if request is None:
            return {"transport": "stdio"}
        return {
            "query": str(request.url.query),
            "authorization": request.headers.get("authorization", ""),
        }

    @server.tool()
    def big(size: int) -> str:
        """Return `size` characters."""
        return "x" * size

    @server.tool()
    def fail(message: str = "it broke") -> str:
        """Always fail with an is_error result."""
        raise ToolError(message)

    @server.tool()
    def crash() -> str:
        """Raise an unexpected exception (the server reports it as a tool error)."""
        raise RuntimeError("unexpected crash")

    @server.tool()
    def garbage() -> str:
        """A lone surrogate: the reply is not valid JSON for the client."""
        return "broken \udcff reply"

    @server.tool()
    def noise() -> str:
        """Write a line that is not JSON-RPC to stdout (the protocol channel under stdio)."""
        os.write(1, b"this line is not JSON-RPC\n")
        return "made some noise"

    @server.tool()
    def mixed() -> list[Any]:
        """Odd content: control characters, an image, an embedded resource."""
        return [
            TextContent(type="text", text="bell\x07 nul\x00 end"),
            ImageContent(type="image", data="bm90IGFuIGltYWdl", mime_type="image/png"),
            EmbeddedResource(
                type="resource",
                resource=TextResourceContents(uri="file:///tmp/x.txt", text="inner text"),
            ),
        ]

    @server.tool()
    def picture(width: int = 64, height: int = 32) -> list[Any]:
        """A real PNG (a red rectangle) and a caption."""
        buffer = io.BytesIO()
        Image.new("RGB", (width, height), (220, 20, 20)).save(buffer, "PNG")
        data = base64.b64encode(buffer.getvalue()).decode()
        return [
            TextContent(type="text", text="Here is the picture."),
            ImageContent(type="image", data=data, mime_type="image/png"),
        ]

    @server.tool()
    async def add_tool(tool_name: str, ctx: Context) -> str:
        """Register a new tool named `tool_name` and announce the changed list."""

        def dynamic() -> str:
            return f"I am {tool_name}"

        server.add_tool(dynamic, name=tool_name, description=f"Dynamic tool {tool_name}")
        await ctx.notify_tools_changed()
        with contextlib.suppress(Exception):  # modern connections have no legacy channel
            await ctx.session.send_tool_list_changed()
        return f"added {tool_name}"

    return server


def main() -> None:
    """Parse arguments and serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transport", default="stdio", choices=["stdio", "streamable-http", "sse"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--name", default=os.environ.get("REPLICA_NAME", "replica"))
    args = parser.parse_args()
    server = build_server(args.name)
    if args.transport == "stdio":
        server.run("stdio")
    elif args.transport == "sse":
        server.run("sse", host="127.0.0.1", port=args.port)
    else:
        server.run("streamable-http", host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    sys.exit(main())
