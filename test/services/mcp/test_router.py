"""`/mcp` admin routes on a small app around the router, with a real pool behind it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from app.api import deps, deps_system
from app.api.routers import mcp as mcp_router
from app.core.errors import install_error_handlers
from app.services.mcp import McpPool
from test.services.mcp.conftest import FAST, PoolFactory, stdio_command
from test.support.waiting import eventually


def build_app(pool: McpPool | None) -> FastAPI:
    """The router alone, given the pool (and no adapters) the lifespan would start."""
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(mcp_router.router)
    if pool is not None:
        app.dependency_overrides[deps.get_state] = lambda: SimpleNamespace()  # no lifespan
        app.dependency_overrides[deps_system.get_mcp_pool] = lambda: pool
        app.dependency_overrides[deps_system.get_adapter_tools] = lambda: SimpleNamespace(
            tools=list
        )
    return app


@pytest.fixture
async def pool(make_pool: PoolFactory) -> McpPool:
    """One stdio test server, one unreachable HTTP server, one disabled server."""
    return await make_pool(
        {
            "tools": {**stdio_command("router")},
            "gone": {
                "transport": "streamable_http",
                "endpoints": ["http://127.0.0.1:9/mcp"],
                **FAST,
            },
            "off": {"transport": "stdio", "command": "nothing", "enabled": False},
        },
        ready=False,
    )


async def client_for(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        yield client


@pytest.fixture
async def admin(pool: McpPool) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose caller is an admin."""
    app = build_app(pool)
    app.dependency_overrides[deps.get_admin_user] = lambda: SimpleNamespace(is_admin=True)
    async for client in client_for(app):
        yield client


@pytest.mark.slow
async def test_admin_sees_servers_and_tools(pool: McpPool, admin: httpx.AsyncClient) -> None:
    await eventually(lambda: pool.groups["tools"].available, timeout_s=20)
    servers = (await admin.get("/mcp/servers")).json()
    by_name = {s["name"]: s for s in servers}
    assert list(by_name) == ["tools", "gone", "off"]
    assert by_name["tools"]["status"] == "healthy"
    assert by_name["tools"]["tools_count"] == 15
    assert by_name["tools"]["endpoints"][0]["healthy"] is True
    assert by_name["gone"]["status"] == "down"
    await eventually(lambda: pool.groups["gone"].replicas[0].last_error is not None)
    gone = (await admin.get("/mcp/servers")).json()[1]["endpoints"][0]
    assert gone["healthy"] is False and "cannot connect" in gone["last_error"]
    assert by_name["off"] == {
        "name": "off",
        "transport": "stdio",
        "status": "disabled",
        "endpoints": [
            {
                "target": "stdio:nothing#0",
                "healthy": False,
                "in_flight": 0,
                "last_error": None,
                "latency_ms": None,
            }
        ],
        "tools_count": 0,
    }

    tools = (await admin.get("/mcp/tools")).json()
    echo = next(t for t in tools if t["qualified_name"] == "tools__echo")
    assert echo["server"] == "tools" and echo["name"] == "echo"
    assert echo["available"] is True and echo["kind"] == "mcp"
    assert echo["input_schema"]["properties"]["text"]["type"] == "string"
    assert echo["description"] == "Return the text unchanged."


@pytest.mark.slow
async def test_reconnect_is_accepted_for_known_servers_only(
    pool: McpPool, admin: httpx.AsyncClient
) -> None:
    await eventually(lambda: pool.groups["tools"].available, timeout_s=20)
    replica = pool.groups["tools"].replicas[0]
    assert (await admin.post("/mcp/servers/tools/reconnect")).status_code == 202
    await eventually(lambda: replica.generation == 2 and replica.connected, timeout_s=20)
    missing = await admin.post("/mcp/servers/nope/reconnect")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"


async def test_normal_users_get_403_and_anonymous_callers_401(pool: McpPool) -> None:
    app = build_app(pool)
    app.dependency_overrides[deps.get_current_user] = lambda: SimpleNamespace(is_admin=False)
    async for client in client_for(app):
        for method, path in [
            ("GET", "/mcp/servers"),
            ("GET", "/mcp/tools"),
            ("POST", "/mcp/servers/tools/reconnect"),
        ]:
            response = await client.request(method, path)
            assert response.status_code == 403, path
            assert response.json()["code"] == "forbidden"

    anonymous = build_app(pool)
    anonymous.dependency_overrides[deps.get_auth_service] = lambda: None
    async for client in client_for(anonymous):
        response = await client.get("/mcp/servers")
        assert response.status_code == 401
        assert response.json()["code"] == "not_authenticated"


async def test_without_a_pool_the_routes_say_unavailable() -> None:
    app = build_app(None)
    app.dependency_overrides[deps.get_admin_user] = lambda: SimpleNamespace(is_admin=True)
    async for client in client_for(app):
        response = await client.get("/mcp/servers")
        assert response.status_code == 503
