"""`/mcp` admin responses: servers with their replicas, tools."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class McpEndpointRead(BaseModel):
    """One replica of a server."""

    target: str
    healthy: bool
    in_flight: int
    last_error: str | None
    latency_ms: float | None


class McpServerRead(BaseModel):
    """A configured server and the state of its replicas."""

    name: str
    transport: str
    status: Literal["healthy", "degraded", "down", "disabled"]
    endpoints: list[McpEndpointRead]
    tools_count: int


class McpToolRead(BaseModel):
    """A tool as the model sees it."""

    server: str
    name: str
    qualified_name: str
    description: str
    input_schema: dict[str, Any]
    available: bool
    kind: str
