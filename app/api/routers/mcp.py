"""`/mcp` (admin only): MCP servers, their tools, and reconnecting a server."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from app.api.deps import AdminUser
from app.api.deps_system import AdapterToolsDep, McpPoolDep
from app.core.errors import NotFound
from app.core.redact import redact_tree
from app.schemas.mcp import McpServerRead, McpToolRead

router = APIRouter(prefix="/mcp", tags=["mcp"])


@router.get("/servers", response_model=list[McpServerRead])
async def list_servers(_admin: AdminUser, pool: McpPoolDep) -> Any:
    """Every configured MCP server with the health of each replica."""
    return redact_tree(pool.status())  # endpoint URLs may carry credentials


@router.get("/tools", response_model=list[McpToolRead])
async def list_tools(_admin: AdminUser, pool: McpPoolDep, adapters: AdapterToolsDep) -> Any:
    """Every known tool, including those of servers that are down right now."""
    return [*pool.tools(include_unavailable=True), *adapters.tools()]


@router.post(
    "/servers/{name}/reconnect", status_code=status.HTTP_202_ACCEPTED, response_class=Response
)
async def reconnect_server(name: str, _admin: AdminUser, pool: McpPoolDep) -> Response:
    """Drop and reopen every connection of one server (runs in the background)."""
    if not await pool.reconnect(name):
        raise NotFound(f"No MCP server named {name!r}")
    return Response(status_code=status.HTTP_202_ACCEPTED)
