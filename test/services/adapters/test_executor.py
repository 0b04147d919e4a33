"""Adapter operations called as tools against the loopback service."""

from __future__ import annotations

import json
from typing import Any

from app.services.urls import FetchLimits
from test.fakes.http_service import HttpService, NetworkJail
from test.services.adapters.conftest import ToolsFactory, service_adapter


async def test_tools_are_described_for_the_model(
    http_service: HttpService, make_tools: ToolsFactory
) -> None:
    tools = await make_tools(service_adapter(http_service), allow=(http_service.host,))
    names = [t.qualified_name for t in tools.available(servers=None)]
    assert names[:3] == ["svc__list_items", "svc__get_user", "svc__echo"]
    assert tools.available(servers={"other"}) == []
    echo = next(t for t in tools.available(servers={"svc"}) if t.qualified_name == "svc__echo")
    schema = echo.input_schema
    assert set(schema["properties"]) == {"kind", "q", "n", "tags", "flag", "title"}
    assert schema["required"] == ["kind", "q"] and schema["additionalProperties"] is False
    ref = tools.resolve("svc__echo")
    assert ref is not None and (ref.server, ref.name) == ("svc", "echo")
    assert tools.resolve("svc__nope") is None
    info = tools.tools()[0]
    assert info.kind == "adapter" and info.available is True and info.server == "svc"


async def test_arguments_go_to_path_query_and_body(
    http_service: HttpService, make_tools: ToolsFactory
) -> None:
    tools = await make_tools(service_adapter(http_service), allow=(http_service.host,))
    outcome = await tools.call(
        "svc__echo",
        {"kind": "a", "q": "x y&z", "tags": ["t1", "t2"], "flag": True, "title": "Hi"},
    )
    assert outcome.status == "ok", outcome.content
    echoed = json.loads(outcome.content)
    assert echoed["method"] == "POST" and echoed["path"] == "/echo/a"
    assert echoed["query"] == [["q", "x y&z"], ["n", "5"], ["tags", "t1"], ["tags", "t2"],
                               ["flag", "true"]]  # fmt: skip
    assert echoed["body"] == {"title": "Hi"}
    assert echoed["headers"]["content-type"] == "application/json"
    assert outcome.duration_ms >= 0


async def test_path_values_stay_one_segment(
    http_service: HttpService, make_tools: ToolsFactory
) -> None:
    tools = await make_tools(service_adapter(http_service), allow=(http_service.host,))
    outcome = await tools.call("svc__get_user", {"user_id": "a/b c?d#e"})
    assert outcome.status == "ok", outcome.content
    assert json.loads(outcome.content)["path"] == "/users/a%2Fb%20c%3Fd%23e"
    for bad in ("..", ".", ""):
        refused = await tools.call("svc__get_user", {"user_id": bad})
        assert refused.status == "error" and "not a usable path value" in refused.content


async def test_invalid_arguments_are_error_outcomes(
    http_service: HttpService, make_tools: ToolsFactory
) -> None:
    tools = await make_tools(service_adapter(http_service), allow=(http_service.host,))
    before = len(http_service.requests)
    cases: list[tuple[Any, str]] = [
        ({"kind": "a"}, "'q' is a required property"),
        ({"kind": "c", "q": "x"}, "kind: 'c' is not one of ['a', 'b']"),
        ({"kind": "a", "q": "x", "n": "five"}, "n: 'five' is not of type 'integer'"),
        ({"kind": "a", "q": "x", "zzz": 1}, "Additional properties are not allowed"),
        ({"kind": "a", "q": "x", "title": "t" * 30}, "title: "),
        ([1, 2], "must be a JSON object"),
    ]
    for arguments, message in cases:
        outcome = await tools.call("svc__echo", arguments)
        assert outcome.status == "error"
        assert outcome.content.startswith("Invalid arguments for svc__echo: ")
        assert message in outcome.content, outcome.content
    assert len(http_service.requests) == before  # nothing was sent
    unknown = await tools.call("svc__nope", {})
    assert (unknown.status, unknown.content) == ("error", "Unknown tool: svc__nope")


async def test_header_auth_comes_from_the_environment(
    http_service: HttpService, make_tools: ToolsFactory
) -> None:
    raw = service_adapter(
        http_service, auth={"type": "header", "name": "Authorization", "env": "SVC_TOKEN",
                            "prefix": "Bearer "}
    )  # fmt: skip
    environ: dict[str, str] = {}
    tools = await make_tools(raw, allow=(http_service.host,), environ=environ)
    assert tools.available(servers=None) == []  # no key, no tools
    assert tools.tools()[0].available is False
    missing = await tools.call("svc__echo", {"kind": "a", "q": "x"})
    assert missing.status == "error" and "SVC_TOKEN is not set" in missing.content
    environ["SVC_TOKEN"] = "tok-123456"
    outcome = await tools.call("svc__echo", {"kind": "a", "q": "x"})
    assert outcome.status == "ok"
    assert http_service.requests[-1].headers["authorization"] == "Bearer tok-123456"
    assert "tok-123456" not in outcome.content  # the echo of the header is redacted
    assert '"authorization": "Bearer [redacted]"' in outcome.content


async def test_query_auth(http_service: HttpService, make_tools: ToolsFactory) -> None:
    raw = service_adapter(http_service, auth={"type": "query", "name": "key", "env": "SVC_KEY"})
    tools = await make_tools(raw, allow=(http_service.host,), environ={"SVC_KEY": "k-987654"})
    outcome = await tools.call("svc__echo", {"kind": "b", "q": "x"})
    assert outcome.status == "ok"
    assert ("key", "k-987654") in http_service.requests[-1].query
    assert "k-987654" not in outcome.content


async def test_response_shaping(http_service: HttpService, make_tools: ToolsFactory) -> None:
    tools = await make_tools(service_adapter(http_service), allow=(http_service.host,))
    items = await tools.call("svc__list_items", {})
    assert json.loads(items.content) == [
        {"name": "alpha", "price": 3.5},
        {"name": "beta", "price": 7.0},
    ]
    text = await tools.call("svc__text", {})
    assert (text.status, text.content) == ("ok", "plain text answer")
    missing = await tools.call("svc__missing", {})
    assert missing.status == "error"
    assert missing.content == 'HTTP 404 from svc: {"error": "status 404"}'


async def test_pointer_to_nothing_is_an_error(
    http_service: HttpService, make_tools: ToolsFactory
) -> None:
    raw = service_adapter(http_service)
    raw["operations"][0]["response"] = {"pointer": "/data/nothing"}
    tools = await make_tools(raw, allow=(http_service.host,))
    outcome = await tools.call("svc__list_items", {})
    assert outcome.status == "error" and "nothing at /data/nothing" in outcome.content


async def test_size_and_time_caps(http_service: HttpService, make_tools: ToolsFactory) -> None:
    raw = service_adapter(http_service, max_result_bytes=1000, max_response_bytes=50_000)
    tools = await make_tools(raw, allow=(http_service.host,))
    capped = await tools.call("svc__big", {"size": 5000})
    assert capped.status == "ok"
    assert capped.content.startswith("x" * 1000)
    assert "[truncated: the result was 5000 bytes; showing the first 1000]" in capped.content
    too_big = await tools.call("svc__big", {"size": 60_000})
    assert too_big.status == "error" and "over the 50000-byte cap" in too_big.content
    slow = await tools.call("svc__slow", {"seconds": 10, "every": 0.05})
    assert slow.status == "error" and "no complete answer within 0.5 s" in slow.content
    assert slow.duration_ms < 3000


async def test_redirects_to_internal_addresses_fail_the_call(
    http_service: HttpService, make_tools: ToolsFactory, network_jail: NetworkJail
) -> None:
    tools = await make_tools(service_adapter(http_service), allow=(http_service.host,))
    for target in ("http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/", "/items"):
        outcome = await tools.call("svc__redirect", {"to": target})
        if target == "/items":
            assert outcome.status == "ok"
        else:
            assert outcome.status == "error" and "internal address" in outcome.content
    assert network_jail.violations == []


async def test_the_service_must_be_allow_listed(
    http_service: HttpService, make_tools: ToolsFactory
) -> None:
    raw = service_adapter(http_service, base_url=f"http://localhost:{http_service.port}")
    tools = await make_tools(raw, limits=FetchLimits(timeout_s=2))
    before = len(http_service.requests)
    outcome = await tools.call("svc__list_items", {})
    assert outcome.status == "error" and "loopback" in outcome.content
    assert len(http_service.requests) == before
