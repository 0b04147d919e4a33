"""A loopback HTTP service for adapter and fetch tests, and a canary that counts connections.

Everything listens on 127.0.0.1 only. The service answers JSON, echoes requests, redirects
wherever it is told, sends oversized, slow and gzip-bomb answers; the canary accepts TCP
connections and counts them (hostile URLs point at it and it must count zero).
"""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web


@dataclass
class Recorded:
    """One request the service received."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpService:
    """The running service: its base URL and what it received."""

    port: int = 0
    requests: list[Recorded] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        """`127.0.0.1:<port>` (an allow-list entry for this service only)."""
        return f"127.0.0.1:{self.port}"


ITEMS = [
    {"id": 1, "name": "alpha", "price": 3.5, "secret_field": "x"},
    {"id": 2, "name": "beta", "price": 7.0, "secret_field": "y"},
]


def _routes(service: HttpService) -> web.RouteTableDef:
    routes = web.RouteTableDef()

    @routes.get("/items")
    async def items(request: web.Request) -> web.Response:
        return web.json_response({"data": {"items": ITEMS, "count": len(ITEMS)}})

    @routes.get("/users/{user_id}")
    async def user(request: web.Request) -> web.Response:
        return web.json_response({"id": request.match_info["user_id"], "path": request.raw_path})

    @routes.route("*", "/echo{tail:.*}")
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "method": request.method,
                "path": request.raw_path.split("?")[0],
                "query": list(request.query.items()),
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": json.loads(body) if body else None,
            }
        )

    @routes.get("/text")
    async def text(request: web.Request) -> web.Response:
        return web.Response(text="plain \x00text\x07 answer", content_type="text/plain")

    @routes.get("/status/{code}")
    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        return web.json_response({"error": f"status {code}"}, status=code)

    @routes.route("*", "/redirect")
    async def redirect(request: web.Request) -> web.Response:
        code = int(request.query.get("status", "302"))
        return web.Response(status=code, headers={"Location": request.query["to"]})

    @routes.get("/big")
    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * int(request.query["size"]), content_type="text/plain")

    @routes.get("/stream")
    async def stream(request: web.Request) -> web.StreamResponse:
        """Chunked (no Content-Length), `chunks` pieces of 64 KiB."""
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        for _ in range(int(request.query["chunks"])):
            await response.write(b"y" * 65536)
        return response

    @routes.get("/slow")
    async def slow(request: web.Request) -> web.StreamResponse:
        """Headers at once, then one byte every `every` seconds for `seconds` seconds."""
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        every, seconds = float(request.query.get("every", "0.1")), float(request.query["seconds"])
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while loop.time() < until:
            await response.write(b".")
            await asyncio.sleep(every)
        return response

    @routes.get("/gzip")
    async def bomb(request: web.Request) -> web.Response:
        """A small gzip body that inflates to `size` bytes."""
        data = gzip.compress(b"\0" * int(request.query["size"]))
        return web.Response(
            body=data, headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"}
        )

    @routes.get("/openapi.json")
    async def spec(request: web.Request) -> web.Response:
        return web.json_response(service_openapi())

    del service
    return routes


def service_openapi() -> dict[str, Any]:
    """An OpenAPI 3 document describing part of this service."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "Test service", "version": "1"},
        "paths": {
            "/users/{user_id}": {
                "get": {
                    "operationId": "getUser",
                    "summary": "One user by id.",
                    "parameters": [
                        {
                            "name": "user_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                }
            },
            "/echo/search": {
                "get": {
                    "operationId": "search",
                    "description": "Search things.",
                    "parameters": [
                        {"$ref": "#/components/parameters/Query"},
                        {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                    ],
                },
                "post": {
                    "operationId": "createThing",
                    "summary": "Create a thing.",
                    "requestBody": {
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}
                        }
                    },
                },
            },
            "/admin/drop": {"delete": {"operationId": "dropEverything", "summary": "Danger."}},
        },
        "components": {
            "parameters": {
                "Query": {
                    "name": "q",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string"},
                }
            },
            "schemas": {
                "Thing": {
                    "type": "object",
                    "required": ["title"],
                    "properties": {
                        "title": {"type": "string"},
                        "tags": {"type": "array", "items": {"$ref": "#/components/schemas/Tag"}},
                    },
                },
                "Tag": {"type": "string", "maxLength": 20},
            },
        },
    }


@asynccontextmanager
async def start_http_service() -> AsyncIterator[HttpService]:
    """Run the service on a free loopback port for the duration of the context."""
    service = HttpService()

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        service.requests.append(
            Recorded(
                request.method,
                request.raw_path.split("?")[0],
                list(request.query.items()),
                {k.lower(): v for k, v in request.headers.items()},
                body,
            )
        )
        response: web.StreamResponse = await handler(request)
        return response

    app = web.Application(middlewares=[record])
    app.add_routes(_routes(service))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None and server.sockets
    service.port = server.sockets[0].getsockname()[1]
    try:
        yield service
    finally:
        await runner.cleanup()


@dataclass
class Canary:
    """A TCP listener on 127.0.0.1 that counts every connection it accepts."""

    port: int = 0
    connections: int = 0


@asynccontextmanager
async def start_canary() -> AsyncIterator[Canary]:
    """Count connections on a free loopback port; each is closed at once."""
    canary = Canary()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        canary.connections += 1
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    canary.port = server.sockets[0].getsockname()[1]
    try:
        yield canary
    finally:
        server.close()
        await server.wait_closed()


@dataclass
class NetworkJail:
    """Outgoing connection attempts: those outside 127.0.0.0/8 are blocked and recorded."""

    violations: list[Any] = field(default_factory=list)
    loopback: int = 0  # attempts let through (proves the jail sees the client's connections)


def _is_loopback(address: Any) -> bool:
    try:
        return ipaddress.ip_address(str(address[0]).split("%")[0]) in LOOPBACK
    except ValueError:
        return False


LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


@pytest.fixture
async def network_jail(monkeypatch: pytest.MonkeyPatch) -> NetworkJail:
    """Make the event loop refuse (and record) any connection that would leave 127.0.0.0/8:
    a safety net, so even a guard bug could never send test traffic to a real address."""
    jail = NetworkJail()
    loop = asyncio.get_running_loop()
    original = loop.sock_connect

    async def sock_connect(sock: socket.socket, address: Any) -> None:
        if not _is_loopback(address):
            jail.violations.append(address)
            raise OSError(f"network jail: no test traffic to {address[0]}")
        jail.loopback += 1
        await original(sock, address)

    monkeypatch.setattr(loop, "sock_connect", sock_connect)
    return jail


@pytest.fixture(scope="session")
async def http_service() -> AsyncIterator[HttpService]:
    """The loopback test service, shared by the session."""
    async with start_http_service() as service:
        yield service


@pytest.fixture
async def canary() -> AsyncIterator[Canary]:
    """A fresh connection-counting listener for one test."""
    async with start_canary() as found:
        yield found


class StubResolver:
    """A resolver from a fixed table (tests never look up real names); records each lookup."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        """The table's addresses for `host`, or the error an unknown name gives."""
        self.calls.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.table[host])
