"""Full chat turns that call an app adapter served by a loopback service (allow-listed here):
the echo model, the fake OpenAI upstream, argument errors, and `GET /mcp/tools`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.api import deps
from app.main import create_app
from test.conftest import extra_models
from test.fakes.http_service import HttpService, NetworkJail, http_service, network_jail
from test.fakes.llm_upstream import FakeToolCall, Reply
from test.support.apps import REPO_CONFIG, make_settings, serve_app
from test.support.auth import register_and_login
from test.support.sse import names, stream_chat, text_of

__all__ = ["http_service", "network_jail"]


def adapter_file(service: HttpService) -> dict[str, Any]:
    """An adapter of the loopback service: one read and one write operation."""
    return {
        "name": "svc",
        "description": "The loopback test service.",
        "base_url": service.base_url,
        "auth": {"type": "header", "name": "X-Api-Key", "env": "VEKTOR_TEST_SVC_KEY"},
        "operations": [
            {
                "name": "items",
                "description": "List the items (name and price).",
                "path": "/items",
                "response": {"pointer": "/data/items", "fields": ["name", "price"]},
            },
            {
                "name": "get_user",
                "description": "One user by id.",
                "path": "/users/{user_id}",
                "parameters": {
                    "path": {"type": "object", "properties": {"user_id": {"type": "string"}}}
                },
            },
            {
                "name": "go",
                "description": "Follow a redirect.",
                "path": "/redirect",
                "parameters": {
                    "query": {"type": "object", "properties": {"to": {"type": "string"}}}
                },
            },
        ],
    }


@pytest.fixture
async def adapter_app(
    app: Any,
    database_url: str,
    log_dir: Path,
    fake_llm: Any,
    http_service: HttpService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Any]:
    """An app whose CONFIG_DIR has one adapter; only the test service is allow-listed."""
    monkeypatch.setenv("VEKTOR_TEST_SVC_KEY", "svc-key-0123456789")
    shipped = json.loads((REPO_CONFIG / "model_configs.json").read_text())
    shipped["models"] += extra_models(fake_llm)
    (tmp_path / "model_configs.json").write_text(json.dumps(shipped))
    (tmp_path / "mcp_servers.json").write_text(json.dumps({"servers": {}}))
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "svc.json").write_text(json.dumps(adapter_file(http_service)))
    settings = make_settings(
        database_url, log_dir, config_dir=tmp_path, url_allowlist=[http_service.host]
    )
    application = create_app(settings)
    async with LifespanManager(application, startup_timeout=60, shutdown_timeout=60):
        yield application


@pytest.fixture
async def adapter_client(adapter_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A real-socket client of the adapter-enabled app."""
    async with serve_app(adapter_app) as url, httpx.AsyncClient(base_url=url, timeout=30) as c:
        yield c


async def test_echo_model_calls_an_adapter(
    adapter_client: httpx.AsyncClient, http_service: HttpService, network_jail: NetworkJail
) -> None:
    user = await register_and_login(adapter_client, "gina")
    events = await stream_chat(adapter_client, user["headers"], message="/tool svc__items {}")
    call = next(e for e in events if e.name == "tool_call").data
    assert (call["server"], call["tool"], call["arguments"]) == ("svc", "items", {})
    result = next(e for e in events if e.name == "tool_result").data
    assert result["status"] == "ok"
    assert json.loads(result["content"]) == [
        {"name": "alpha", "price": 3.5},
        {"name": "beta", "price": 7.0},
    ]
    assert names(events)[-1] == "done" and "alpha" in text_of(events)
    sent = http_service.requests[-1]
    assert sent.path == "/items" and sent.headers["x-api-key"] == "svc-key-0123456789"
    assert "svc-key" not in json.dumps([e.data for e in events])
    assert network_jail.violations == []


async def test_openai_upstream_calls_an_adapter(
    adapter_client: httpx.AsyncClient, fake_llm: Any
) -> None:
    user = await register_and_login(adapter_client, "hank")
    fake_llm.requests.clear()
    fake_llm.script(
        Reply(tool_calls=[FakeToolCall("svc__get_user", {"user_id": "u 7"}, id="call_1")]),
        Reply.text("That is user 7."),
    )
    events = await stream_chat(
        adapter_client, user["headers"], message="who is u 7?", model="fake-openai"
    )
    result = next(e for e in events if e.name == "tool_result").data
    assert result["status"] == "ok" and json.loads(result["content"])["path"] == "/users/u%207"
    assert text_of(events) == "That is user 7."
    offered = {t["function"]["name"]: t["function"] for t in fake_llm.requests[0].json["tools"]}
    assert set(offered) == {"svc__items", "svc__get_user", "svc__go"}
    assert offered["svc__get_user"]["parameters"]["required"] == ["user_id"]
    tool_message = fake_llm.requests[1].json["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["tool_call_id"] == "call_1"


async def test_bad_arguments_and_internal_redirects_reach_the_model_as_errors(
    adapter_client: httpx.AsyncClient, http_service: HttpService, network_jail: NetworkJail
) -> None:
    user = await register_and_login(adapter_client, "iris")
    events = await stream_chat(
        adapter_client, user["headers"], message='/tool svc__get_user {"id": 1}'
    )
    result = next(e for e in events if e.name == "tool_result").data
    assert result["status"] == "error"
    assert result["content"].startswith("Invalid arguments for svc__get_user: ")
    assert names(events)[-1] == "done"

    target = json.dumps({"to": "http://169.254.169.254/latest/meta-data/"})
    events = await stream_chat(adapter_client, user["headers"], message=f"/tool svc__go {target}")
    result = next(e for e in events if e.name == "tool_result").data
    assert result["status"] == "error" and "link-local" in result["content"]
    assert network_jail.violations == []


async def test_adapter_operations_are_listed_with_mcp_tools(
    adapter_app: Any, adapter_client: httpx.AsyncClient
) -> None:
    adapter_app.dependency_overrides[deps.get_admin_user] = lambda: SimpleNamespace(is_admin=True)
    try:
        tools = (await adapter_client.get("/mcp/tools")).json()
    finally:
        adapter_app.dependency_overrides.clear()
    listed = {t["qualified_name"]: t for t in tools}
    assert listed["svc__items"] == {
        "server": "svc",
        "name": "items",
        "qualified_name": "svc__items",
        "description": "List the items (name and price).",
        "input_schema": {"type": "object", "properties": {}, "additionalProperties": False},
        "available": True,
        "kind": "adapter",
    }
