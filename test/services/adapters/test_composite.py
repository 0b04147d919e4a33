"""Several tool sources offered as one: MCP-like stub first, then adapters."""

from __future__ import annotations

from app.services.tools import NoTools, Toolbox
from test.api.chat.stubs import StubTools
from test.fakes.http_service import HttpService
from test.services.adapters.conftest import ToolsFactory, service_adapter


async def test_sources_are_merged_and_calls_routed(
    http_service: HttpService, make_tools: ToolsFactory
) -> None:
    adapters = await make_tools(service_adapter(http_service), allow=(http_service.host,))
    stub = StubTools()
    tools = Toolbox([stub, NoTools(), adapters])
    names = [t.qualified_name for t in tools.available(servers=None)]
    stub_names = [t.qualified_name for t in stub.available(servers=None)]
    assert names[: len(stub_names)] == stub_names and "svc__list_items" in names
    assert len(names) == len(set(names))
    bound = tools.resolve("svc__list_items")
    assert bound is not None and bound.tool.server == "svc"
    outcome = await tools.call("svc__list_items", {})
    assert outcome.status == "ok" and "alpha" in outcome.content
    unknown = await tools.call("nobody__nothing", {})
    assert (unknown.status, unknown.content) == ("error", "Unknown tool: nobody__nothing")
    assert tools.resolve("nobody__nothing") is None


async def test_on_a_clash_the_first_source_wins(
    http_service: HttpService, make_tools: ToolsFactory
) -> None:
    adapters = await make_tools(service_adapter(http_service), allow=(http_service.host,))
    tools = Toolbox([adapters, adapters])
    names = [t.qualified_name for t in tools.available(servers=None)]
    assert len(names) == len(set(names)) == len(adapters.available(servers=None))
