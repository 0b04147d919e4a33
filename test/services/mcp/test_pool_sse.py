"""The legacy SSE transport: the same test server, served with mcp 2.x's SSE app."""

from __future__ import annotations

import pytest

from test.services.mcp.conftest import FAST, PoolFactory, ServerProcess
from test.support.waiting import eventually


@pytest.fixture
def sse_server() -> ServerProcess:
    """One test server speaking the SSE transport."""
    server = ServerProcess("sse", transport="sse")
    server.start()
    yield server
    server.kill()


@pytest.mark.slow
async def test_sse_server_calls_and_reconnects_after_a_restart(
    sse_server: ServerProcess, make_pool: PoolFactory
) -> None:
    pool = await make_pool(
        {
            "legacy": {
                "transport": "sse",
                "endpoints": [sse_server.url],
                "protocol": "legacy",
                **FAST,
            }
        }
    )
    assert (await pool.call("legacy__whoami", {})).content == "sse"
    seen = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append(value)

    outcome = await pool.call("legacy__slow", {"seconds": 0.1, "steps": 2}, on_progress=progress)
    assert outcome.status == "ok" and seen == [0, 1]

    sse_server.kill()
    await eventually(lambda: pool.status()[0]["status"] == "down")
    assert (await pool.call("legacy__echo", {"text": "x"})).status == "error"
    sse_server.start()
    await eventually(lambda: pool.status()[0]["status"] == "healthy", timeout_s=15)
    assert (await pool.call("legacy__echo", {"text": "back"})).content == "back"
