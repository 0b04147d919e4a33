"""Fixtures of the adapter tests: the loopback service, the network jail, adapter builders."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from app.services.adapters import AdapterTools, load_adapters
from app.services.urls import FetchLimits, SafeFetcher, UrlGuard, UrlPolicy
from test.fakes.http_service import HttpService, NetworkJail, canary, http_service, network_jail

__all__ = ["canary", "http_service", "network_jail"]

ToolsFactory = Callable[..., Awaitable[AdapterTools]]


@pytest.fixture(autouse=True)
def _no_traffic_outside_loopback(network_jail: NetworkJail) -> None:
    """Every adapter test runs in the jail."""


def write_adapter(config_dir: Path, raw: dict[str, Any], filename: str | None = None) -> Path:
    """Write one adapter file into `config_dir/app/`."""
    directory = config_dir / "app"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (filename or f"{raw.get('name', 'adapter')}.json")
    path.write_text(json.dumps(raw))
    return path


def service_adapter(service: HttpService, **fields: Any) -> dict[str, Any]:
    """An adapter of the loopback test service with a few typical operations."""
    raw: dict[str, Any] = {
        "name": "svc",
        "description": "The test service.",
        "base_url": service.base_url,
        "operations": [
            {
                "name": "list_items",
                "description": "All items.",
                "path": "/items",
                "response": {"pointer": "/data/items", "fields": ["name", "price"]},
            },
            {
                "name": "get_user",
                "description": "One user.",
                "path": "/users/{user_id}",
                "parameters": {
                    "path": {"type": "object", "properties": {"user_id": {"type": "string"}}}
                },
            },
            {
                "name": "echo",
                "description": "Echo the request.",
                "method": "post",
                "path": "/echo/{kind}",
                "parameters": {
                    "path": {
                        "type": "object",
                        "properties": {"kind": {"type": "string", "enum": ["a", "b"]}},
                    },
                    "query": {
                        "type": "object",
                        "properties": {
                            "q": {"type": "string"},
                            "n": {"type": "integer", "default": 5},
                            "tags": {"type": "array", "items": {"type": "string"}},
                            "flag": {"type": "boolean"},
                        },
                        "required": ["q"],
                    },
                    "body": {
                        "type": "object",
                        "properties": {"title": {"type": "string", "maxLength": 20}},
                    },
                },
            },
            {"name": "text", "description": "Plain text.", "path": "/text"},
            {"name": "missing", "description": "A 404.", "path": "/status/404"},
            {"name": "big", "description": "Big.", "path": "/big", "parameters": {
                "query": {"type": "object", "properties": {"size": {"type": "integer"}}}
            }},
            {"name": "slow", "description": "Slow.", "path": "/slow", "timeout_s": 0.5,
             "parameters": {"query": {"type": "object", "properties": {
                 "seconds": {"type": "number"}, "every": {"type": "number"}}}}},
            {"name": "redirect", "description": "Go elsewhere.", "path": "/redirect",
             "parameters": {"query": {"type": "object", "properties": {"to": {"type": "string"}}}}},
        ],
    }  # fmt: skip
    raw.update(fields)
    return raw


@pytest.fixture
async def make_tools(tmp_path: Path) -> AsyncIterator[ToolsFactory]:
    """Load adapter files into an AdapterTools that may reach only `allow` internally."""
    opened: list[AdapterTools] = []

    async def factory(
        *raws: dict[str, Any],
        allow: tuple[str, ...] = (),
        environ: Mapping[str, str] | None = None,
        limits: FetchLimits | None = None,
    ) -> AdapterTools:
        for raw in raws:
            write_adapter(tmp_path, raw)
        guard = UrlGuard(policy=UrlPolicy.from_entries(allow))
        fetcher = SafeFetcher(guard=guard, limits=limits or FetchLimits(timeout_s=5))
        tools = AdapterTools(
            adapters=await load_adapters(tmp_path, fetcher=fetcher),
            fetcher=fetcher,
            environ={} if environ is None else environ,
        )
        opened.append(tools)
        return tools

    yield factory
    for tools in opened:
        await tools.aclose()
