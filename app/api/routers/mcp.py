"""`/mcp` (admin only): MCP servers, their tools, and reconnecting a server."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel

from app.api.deps import AdminUser
from app.api.openapi import answers
from app.core.errors import NotFound, ServiceUnavailable
from app.core.redact import redact_tree
from app.services.mcp import McpPool


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


@answers(503)
async def get_mcp_pool(request: Request) -> McpPool:
    """The lifespan-owned MCP pool."""
    pool: McpPool | None = getattr(request.app.state.vektor, "mcp", None)
    if pool is None:
        raise ServiceUnavailable("The MCP pool is not running")
    return pool


McpPoolDep = Annotated[McpPool, Depends(get_mcp_pool)]

router = APIRouter(prefix="/mcp", tags=["mcp"])


@router.get("/servers", response_model=list[McpServerRead])
async def list_servers(_admin: AdminUser, pool: McpPoolDep) -> Any:
    """Every configured MCP server with the health of each replica."""
    return redact_tree(pool.status())  # endpoint URLs may carry credentials


@router.get("/tools", response_model=list[McpToolRead])
async def list_tools(_admin: AdminUser, pool: McpPoolDep, request: Request) -> Any:
    """Every known tool, including those of servers that are down right now."""
    adapters = getattr(request.app.state.vektor, "adapters", None)  # kind "adapter"
    return [*pool.tools(include_unavailable=True), *(adapters.tools() if adapters else [])]


@router.post(
    "/servers/{name}/reconnect", status_code=status.HTTP_202_ACCEPTED, response_class=Response
)
async def reconnect_server(name: str, _admin: AdminUser, pool: McpPoolDep) -> Response:
    """Drop and reopen every connection of one server (runs in the background)."""
    if not await pool.reconnect(name):
        raise NotFound(f"No MCP server named {name!r}")
    return Response(status_code=status.HTTP_202_ACCEPTED)
