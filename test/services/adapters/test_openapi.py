"""Operations generated from an OpenAPI document: a local file or a URL behind the guard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.services.adapters import AdapterConfigError
from test.fakes.http_service import HttpService, service_openapi
from test.services.adapters.conftest import ToolsFactory, write_adapter
from test.services.adapters.test_config import load

INCLUDE = ["getUser", "search", "createThing"]


def openapi_adapter(source: str, **fields: Any) -> dict[str, Any]:
    """An adapter generated from `source` with three of the document's four operations."""
    return {"name": "gen", "openapi": source, "include_operations": INCLUDE, **fields}


async def test_operations_from_a_local_file(
    tmp_path: Path, http_service: HttpService, make_tools: ToolsFactory
) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "spec.json").write_text(json.dumps(service_openapi()))
    tools = await make_tools(
        openapi_adapter("spec.json", base_url=http_service.base_url), allow=(http_service.host,)
    )
    described = {t.qualified_name: t for t in tools.available(servers=None)}
    assert list(described) == ["gen__getUser", "gen__search", "gen__createThing"]
    assert described["gen__getUser"].description == "One user by id."
    search = described["gen__search"].input_schema
    assert search["required"] == ["q"] and set(search["properties"]) == {"q", "limit"}
    create = described["gen__createThing"].input_schema
    assert create["properties"]["tags"]["items"] == {"type": "string", "maxLength": 20}

    user = await tools.call("gen__getUser", {"user_id": "42"})
    assert json.loads(user.content)["id"] == "42"
    found = await tools.call("gen__search", {"q": "hello", "limit": 2})
    assert json.loads(found.content)["query"] == [["q", "hello"], ["limit", "2"]]
    made = await tools.call("gen__createThing", {"title": "T", "tags": ["a"]})
    assert json.loads(made.content)["body"] == {"title": "T", "tags": ["a"]}
    bad = await tools.call("gen__createThing", {"tags": ["x" * 30]})
    assert bad.status == "error" and "'title' is a required property" in bad.content
    assert tools.resolve("gen__dropEverything") is None  # not in the allow-list


async def test_yaml_and_a_url_behind_the_guard(
    tmp_path: Path, http_service: HttpService, make_tools: ToolsFactory
) -> None:
    (tmp_path / "app").mkdir()
    document = {**service_openapi(), "servers": [{"url": http_service.base_url}]}
    (tmp_path / "app" / "spec.yaml").write_text(yaml.safe_dump(document))
    tools = await make_tools(openapi_adapter("spec.yaml"), allow=(http_service.host,))
    assert tools.adapters["gen"].config.base_url == http_service.base_url  # from `servers`
    spec_url = f"{http_service.base_url}/openapi.json"
    remote = await make_tools(
        openapi_adapter(spec_url, name="remote", base_url=http_service.base_url),
        allow=(http_service.host,),
    )
    assert remote.resolve("remote__search") is not None


async def test_an_openapi_url_must_pass_the_guard(
    tmp_path: Path, http_service: HttpService
) -> None:
    path = write_adapter(
        tmp_path, openapi_adapter(f"{http_service.base_url}/openapi.json", base_url="https://a.b")
    )
    before = len(http_service.requests)
    with pytest.raises(AdapterConfigError) as caught:
        await load(tmp_path)
    assert str(caught.value).startswith(f"{path}: adapter 'gen', field 'openapi': cannot fetch")
    assert "loopback" in str(caught.value)
    assert len(http_service.requests) == before


@pytest.mark.parametrize(
    ("document", "include", "message"),
    [
        (service_openapi(), ["nope"], "operationId 'nope' is not in the document"),
        ({"swagger": "2.0", "paths": {}}, ["x"], "only OpenAPI 3 documents"),
        (
            {**service_openapi(), "components": {}},
            ["search"],
            "reference '#/components/parameters/Query' points at nothing",
        ),
    ],
)
async def test_openapi_errors_name_the_file(
    tmp_path: Path, document: dict[str, Any], include: list[str], message: str
) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "spec.json").write_text(json.dumps(document))
    write_adapter(tmp_path, {**openapi_adapter("spec.json"), "include_operations": include})
    with pytest.raises(AdapterConfigError, match="field 'openapi'") as caught:
        await load(tmp_path)
    assert message in str(caught.value)


async def test_a_disabled_openapi_adapter_is_not_read(tmp_path: Path) -> None:
    write_adapter(tmp_path, openapi_adapter("missing.json", enabled=False))
    (adapter,) = await load(tmp_path)
    assert adapter.operations == () and adapter.base is None
