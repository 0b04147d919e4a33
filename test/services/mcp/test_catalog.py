"""Tool names, collisions, rendering and the small state machines behind the pool."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pytest
from loguru import logger
from mcp import types

from app.services.mcp.balancer import Balancer
from app.services.mcp.breaker import CircuitBreaker
from app.services.mcp.catalog import Catalog
from app.services.mcp.config import McpConfigError, ServerConfig, parse_server
from app.services.tools.naming import VALID_NAME, qualified_name, sanitise
from app.services.tools.render import cap, render_result


def tool(name: str, description: str = "") -> types.Tool:
    """A listed tool with an empty schema."""
    return types.Tool(name=name, description=description, input_schema={"type": "object"})


def server(name: str, **fields: object) -> ServerConfig:
    """A stdio server config."""
    return ServerConfig(name=name, transport="stdio", command="x", **fields)


@pytest.mark.parametrize(
    ("server_name", "tool_name", "expected"),
    [
        ("time", "get_current_time", "time__get_current_time"),
        ("files", "read.file", "files__read_file"),
        ("web", "fetch url/now!", "web__fetch_url_now"),
        ("db", "über-query", "db__ber-query"),
        ("x", "...", "x__tool"),
    ],
)
def test_names_are_sanitised(server_name: str, tool_name: str, expected: str) -> None:
    assert qualified_name(server_name, tool_name) == expected
    assert VALID_NAME.match(expected)


def test_long_names_stay_valid_and_distinct() -> None:
    first = qualified_name("analytics", "a" * 80 + "_one")
    second = qualified_name("analytics", "a" * 80 + "_two")
    assert len(first) == len(second) == 64
    assert first != second
    assert VALID_NAME.match(first) and VALID_NAME.match(second)
    assert sanitise("a b") == "a_b"


def test_collisions_keep_the_first_tool_and_warn_once() -> None:
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(str(m)), level="WARNING")
    try:
        catalog = Catalog()
        listings = [
            (server("a"), [tool("b__c", "first"), tool("get.x"), tool("get_x", "dup")]),
            (server("a__b"), [tool("c", "second")]),
        ]
        catalog.rebuild(listings)
        catalog.rebuild(listings)
    finally:
        logger.remove(sink)
    assert catalog.entries["a__b__c"].description == "first"
    assert catalog.entries["a__get_x"].name == "get.x"
    assert [e.name for e in catalog.by_server["a__b"]] == []
    assert len([m for m in messages if "is not offered" in m]) == 2


def test_allow_and_deny_lists_filter_the_catalog() -> None:
    catalog = Catalog()
    catalog.rebuild(
        [
            (
                server("s", allow_tools=["read", "write"], deny_tools=["write"]),
                [tool("read"), tool("write"), tool("delete")],
            )
        ]
    )
    assert list(catalog.entries) == ["s__read"]


def test_rendering_content_blocks() -> None:
    png = base64.b64encode(b"\x89PNG....").decode()
    result = types.CallToolResult(
        content=[
            types.TextContent(type="text", text="line\x00one\x1b[0m"),
            types.ImageContent(type="image", data=png, mime_type="image/png"),
            types.AudioContent(type="audio", data="!!not base64!!", mime_type="audio/wav"),
            types.ResourceLink(type="resource_link", name="report", uri="https://x/r.pdf"),
            types.EmbeddedResource(
                type="resource",
                resource=types.BlobResourceContents(uri="file:///b.bin", blob=png),
            ),
        ]
    )
    assert render_result(result).splitlines() == [
        "lineone[0m",
        "[image: image/png, 8 bytes]",
        "[audio: audio/wav, invalid base64]",
        "[resource link: report <https://x/r.pdf>]",
        "[resource <file:///b.bin>: application/octet-stream, 8 bytes]",
    ]
    structured = types.CallToolResult(content=[], structured_content={"temp": 21})
    assert render_result(structured) == '{"temp": 21}'


def test_cap_cuts_on_a_character_boundary() -> None:
    assert cap("short", max_bytes=10) == "short"
    capped = cap("é" * 10, max_bytes=5)
    assert capped.startswith("éé\n[truncated: the result was 20 bytes; showing the first 5]")


def test_breaker_opens_after_consecutive_failures_and_tries_once_half_open() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=2, reset_after_s=5, clock=lambda: now[0])
    breaker.record_failure()
    assert breaker.state == "closed" and breaker.available()
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.available()
    now[0] = 5.0
    assert breaker.acquire() and breaker.state == "half_open"
    assert not breaker.available()  # one trial at a time
    breaker.record_failure()
    assert breaker.state == "open"
    now[0] = 10.0
    assert breaker.acquire()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.consecutive_failures == 0


@dataclass(eq=False)
class FakeReplica:
    """A balancer candidate."""

    name: str
    usable: bool = True
    in_flight: int = 0


def test_balancer_strategies() -> None:
    a, b, c = FakeReplica("a"), FakeReplica("b"), FakeReplica("c")
    rr: Balancer[FakeReplica] = Balancer("round_robin")
    assert [rr.pick([a, b, c]).name for _ in range(6)] == list("abcabc")  # type: ignore[union-attr]
    b.usable = False
    assert {rr.pick([a, b, c]).name for _ in range(4)} == {"a", "c"}  # type: ignore[union-attr]
    first: Balancer[FakeReplica] = Balancer("failover")
    assert first.pick([a, b, c]) is a
    assert first.pick([a, b, c], exclude=[a]) is c
    b.usable, a.in_flight, c.in_flight = True, 2, 1
    busy: Balancer[FakeReplica] = Balancer("least_busy")
    assert {busy.pick([a, b, c]).name for _ in range(3)} == {"b"}  # type: ignore[union-attr]
    for replica in (a, b, c):
        replica.usable = False
    assert rr.pick([a, b, c]) is None


def test_approval_policies_mark_the_tools_that_ask_first() -> None:
    catalog = Catalog()
    catalog.rebuild(
        [
            (server("never"), [tool("a")]),
            (server("always", approval="always"), [tool("a")]),
            (server("some", approval={"tools": ["send"]}), [tool("send"), tool("read")]),
        ]
    )
    asks = {name: entry.approval for name, entry in catalog.entries.items()}
    assert asks == {
        "never__a": False,
        "always__a": True,
        "some__send": True,
        "some__read": False,
    }


def test_a_bad_approval_policy_names_the_server_and_field() -> None:
    with pytest.raises(McpConfigError, match="server 'x': field 'approval"):
        parse_server(
            "x",
            {"transport": "stdio", "command": "y", "approval": "sometimes"},
            source="mcp_servers.json",
            environ={},
        )
