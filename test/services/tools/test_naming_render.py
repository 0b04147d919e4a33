"""Tool names and the text a tool result becomes (shared by MCP and adapters)."""

from __future__ import annotations

from mcp import types

from app.services.tools.naming import MAX_NAME, VALID_NAME, qualified_name, sanitise
from app.services.tools.render import cap, clean_text, render_result


def test_a_name_of_only_invalid_characters_becomes_tool() -> None:
    assert sanitise("!!!") == "tool"
    assert qualified_name("...", "///") == "tool__tool"


def test_long_names_differing_only_in_the_server_stay_distinct() -> None:
    tool = "t" * 70
    first, second = qualified_name("alpha", tool), qualified_name("alphb", tool)
    assert first != second
    assert len(first) == len(second) == MAX_NAME
    assert VALID_NAME.match(first) and VALID_NAME.match(second)
    assert qualified_name("alpha", tool) == first  # stable: the model's names do not drift


def test_clean_text_keeps_tabs_and_newlines_and_mends_surrogates() -> None:
    assert clean_text("a\tb\nc\r\nd\x00e\x7f") == "a\tb\nc\r\nde"
    assert clean_text("x\ud800y") == "x?y"


def test_embedded_text_resources_are_inlined() -> None:
    result = types.CallToolResult(
        content=[
            types.EmbeddedResource(
                type="resource",
                resource=types.TextResourceContents(uri="file:///a.txt", text="hello"),
            )
        ]
    )
    assert render_result(result) == "[resource <file:///a.txt>]\nhello"


def test_structured_content_is_ignored_when_there_is_content() -> None:
    result = types.CallToolResult(
        content=[types.TextContent(type="text", text="21 degrees")],
        structured_content={"temp": 21},
    )
    assert render_result(result) == "21 degrees"


def test_cap_keeps_text_of_exactly_the_limit() -> None:
    assert cap("abcde", max_bytes=5) == "abcde"
    assert cap("abcdef", max_bytes=5) == (
        "abcde\n[truncated: the result was 6 bytes; showing the first 5]"
    )
