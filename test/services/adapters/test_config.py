"""Adapter files are validated at start-up; every error names the file, adapter and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from app.services.adapters import AdapterConfigError, load_adapters
from app.services.adapters.executor import AdapterTools
from app.services.urls import SafeFetcher, UrlGuard, UrlPolicy
from test.services.adapters.conftest import write_adapter

REPO_CONFIG = Path(__file__).resolve().parents[3] / "config"
SCHEMA = json.loads((REPO_CONFIG / "app.schema.json").read_text())


def minimal(**fields: Any) -> dict[str, Any]:
    """A valid adapter with one operation; `fields` replace top-level fields."""
    raw: dict[str, Any] = {
        "name": "svc",
        "base_url": "https://api.example.com/v1/",
        "operations": [
            {
                "name": "get",
                "description": "Get a thing.",
                "path": "/things/{id}",
                "parameters": {
                    "path": {"type": "object", "properties": {"id": {"type": "string"}}}
                },
            }
        ],
    }
    raw.update(fields)
    return raw


def operation(**fields: Any) -> dict[str, Any]:
    """The minimal operation with `fields` replaced."""
    op: dict[str, Any] = dict(minimal()["operations"][0])
    op.update(fields)
    return op


async def load(config_dir: Path, *allow: str) -> Any:
    fetcher = SafeFetcher(guard=UrlGuard(policy=UrlPolicy.from_entries(allow)))
    try:
        return await load_adapters(config_dir, fetcher=fetcher)
    finally:
        await fetcher.aclose()


async def test_a_valid_file_loads(tmp_path: Path) -> None:
    write_adapter(tmp_path, minimal())
    write_adapter(tmp_path, minimal(name="ignored"), "svc2.example.json")  # examples are skipped
    write_adapter(tmp_path, minimal(name="hidden"), "_draft.json")
    (adapter,) = await load(tmp_path)
    assert adapter.name == "svc" and adapter.config.base_url == "https://api.example.com/v1"
    assert [op.qualified_name for op in adapter.operations] == ["svc__get"]
    assert await load(tmp_path / "nowhere") == []


BAD: list[tuple[dict[str, Any], str]] = [
    (minimal(name="bad name!"), "field 'name': String should match pattern"),
    (minimal(base_url="ftp://x.example"), "field 'base_url': scheme 'ftp' is not allowed"),
    (minimal(base_url="https://x.example/?a=1"), "field 'base_url': must not contain a query"),
    (minimal(base_url="https://u:p@x.example"), "field 'base_url': credentials"),
    (minimal(api_key="sk-123"), "field 'api_key': not allowed (secrets never go in this file)"),
    (minimal(auth={"type": "header", "name": "X-Key", "env": "sk-live-123"}),
     "field 'auth.env': must be the name of an environment variable"),
    (minimal(auth={"type": "cookie", "name": "k", "env": "K"}), "field 'auth.type'"),
    (minimal(headers={"Authorization": "Bearer x"}), "field 'headers': 'Authorization' cannot"),
    (minimal(operations=[]), "field 'operations': an adapter needs at least one operation"),
    (minimal(operations=[operation(), operation()]), "the name 'get' is used twice"),
    (minimal(operations=[operation(method="TRACE")]),
     "operation 'get' (operations[0]), field 'method'"),
    (minimal(operations=[operation(path="/things/{thing}")]),
     "operation 'get' (operations[0]), field 'parameters.path': the path's {placeholders}"),
    (minimal(operations=[operation(path="things/{id}")]),
     "operation 'get' (operations[0]), field 'path': must start with '/'"),
    (minimal(operations=[operation(parameters={"query": {"type": "string"}})]),
     "field 'parameters.query': must be an object schema"),
    (minimal(operations=[operation(parameters={
        "path": {"type": "object", "properties": {"id": {"type": 5}}}})]),
     "field 'parameters.path': not a valid JSON Schema"),
    (minimal(operations=[operation(parameters={
        "path": {"type": "object", "properties": {"id": {}}},
        "query": {"type": "object", "properties": {"id": {}}}})]),
     "'id' is also a path parameter"),
    (minimal(operations=[operation(response={"pointer": "data"})]),
     "field 'response.pointer': must be a JSON pointer"),
    (minimal(operations=[operation(extra=1)]), "field 'extra': Extra inputs are not permitted"),
    (minimal(include_operations=["x"]), "field 'include_operations': only used together"),
    (minimal(base_url="http://10.0.0.7:8080"),
     "field 'base_url': host 10.0.0.7 is an internal address (private): not allowed "
     "(add it to URL_ALLOWLIST"),
    (minimal(approval="sometimes"), "field 'approval"),
    (minimal(approval={"tools": []}), "field 'approval.ApprovalTools.tools'"),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "message"), BAD)
async def test_errors_name_file_adapter_and_field(
    tmp_path: Path, raw: dict[str, Any], message: str
) -> None:
    path = write_adapter(tmp_path, raw, "svc.json")
    with pytest.raises(AdapterConfigError) as caught:
        await load(tmp_path)
    text = str(caught.value)
    assert text.startswith(f"{path}: "), text
    assert message in text, text
    assert "sk-" not in text  # the offending value is never quoted


async def test_unreadable_and_duplicate_files(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "a.json").write_text("{not json")
    with pytest.raises(AdapterConfigError, match=r"a\.json: invalid JSON at line 1"):
        await load(tmp_path)
    (tmp_path / "app" / "a.json").write_text("[]")
    with pytest.raises(AdapterConfigError, match="expected a JSON object"):
        await load(tmp_path)
    write_adapter(tmp_path, minimal(), "a.json")
    write_adapter(tmp_path, minimal(), "b.json")
    with pytest.raises(
        AdapterConfigError, match=r"b\.json: field 'name': adapter 'svc' is already"
    ):
        await load(tmp_path)


async def test_internal_base_urls_need_the_allow_list(tmp_path: Path) -> None:
    write_adapter(tmp_path, minimal(base_url="http://127.0.0.1:8123/api"))
    with pytest.raises(AdapterConfigError, match="loopback"):
        await load(tmp_path)
    (adapter,) = await load(tmp_path, "127.0.0.1:8123")
    assert adapter.base is not None and adapter.base.port == 8123
    write_adapter(tmp_path, minimal(base_url="http://127.0.0.1:8123/api", enabled=False))
    assert len(await load(tmp_path)) == 1  # disabled: not checked


async def test_the_shipped_example_is_valid_and_disabled() -> None:
    adapters = await load(REPO_CONFIG)
    assert adapters and all(not adapter.config.enabled for adapter in adapters)
    for path in (REPO_CONFIG / "app").glob("*.json"):
        jsonschema.validate(json.loads(path.read_text()), SCHEMA)


def test_the_json_schema_agrees_with_the_loader() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.validate(minimal(), SCHEMA)
    loader_only = {9, 11, 15, 19}  # uniqueness, placeholders, allow-list: beyond JSON Schema
    for index, (raw, _) in enumerate(BAD):
        if index not in loader_only:
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate(raw, SCHEMA)


async def test_approval_marks_the_tools_that_ask_first(tmp_path: Path) -> None:
    second = operation(name="put", path="/things")
    write_adapter(
        tmp_path,
        minimal(
            approval={"tools": ["put"]},
            operations=[minimal()["operations"][0], {**second, "parameters": {}}],
        ),
    )
    write_adapter(tmp_path, minimal(name="all", approval="always"), "all.json")
    write_adapter(tmp_path, minimal(name="none"), "none.json")
    fetcher = SafeFetcher(guard=UrlGuard(policy=UrlPolicy.from_entries(())))
    tools = AdapterTools(adapters=await load_adapters(tmp_path, fetcher=fetcher), fetcher=fetcher)
    try:
        asks = {t.qualified_name: t.approval for t in tools.available(servers=None)}
    finally:
        await tools.aclose()
    assert asks == {
        "svc__get": False, "svc__put": True, "all__get": True, "none__get": False
    }  # fmt: skip
