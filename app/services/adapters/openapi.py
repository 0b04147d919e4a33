"""Operations generated from an OpenAPI 3 document, limited to an explicit allow-list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.services.tools.naming import sanitise
from app.services.urls import FetchError, SafeFetcher

MAX_REF_DEPTH = 24
METHODS = ("get", "post", "put", "patch", "delete")


class OpenApiError(ValueError):
    """The document cannot be read or used; the message says what is wrong."""


def _parse(text: str, *, yaml_hint: bool) -> Any:
    """JSON, or YAML when the name says so (and PyYAML is installed)."""
    try:
        return json.loads(text)
    except ValueError:
        if not yaml_hint:
            raise OpenApiError("not valid JSON") from None
    try:
        import yaml
    except ImportError:
        raise OpenApiError("a YAML document needs PyYAML installed") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise OpenApiError(f"not valid YAML: {exc}") from None


async def read_document(source: str, *, base_dir: Path, fetcher: SafeFetcher) -> dict[str, Any]:
    """Read a local file (relative to the adapter file) or fetch a URL through the URL guard."""
    yaml_hint = source.lower().split("?")[0].endswith((".yaml", ".yml"))
    if source.lower().startswith(("http://", "https://")):
        try:
            response = await fetcher.fetch(source)
        except FetchError as exc:
            raise OpenApiError(f"cannot fetch {source}: {exc}") from None
        if response.status != 200:
            raise OpenApiError(f"cannot fetch {source}: HTTP {response.status}")
        document = _parse(response.text(), yaml_hint=yaml_hint or "yaml" in response.content_type)
    else:
        path = base_dir / source
        try:
            document = _parse(path.read_text(encoding="utf-8"), yaml_hint=yaml_hint)
        except (OSError, UnicodeDecodeError) as exc:
            raise OpenApiError(f"cannot read {path}: {exc}") from None
    if not isinstance(document, dict) or not str(document.get("openapi", "")).startswith("3."):
        raise OpenApiError("only OpenAPI 3 documents are supported (an 'openapi: 3.x' field)")
    return document


def _resolve(document: dict[str, Any], node: Any, depth: int = 0) -> Any:
    """Inline local `$ref`s (`#/components/...`); deeper or recursive ones become `{}`."""
    if isinstance(node, list):
        return [_resolve(document, item, depth) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        if not ref.startswith("#/"):
            raise OpenApiError(f"only local references are supported, not {ref!r}")
        if depth >= MAX_REF_DEPTH:
            return {}
        target: Any = document
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                raise OpenApiError(f"reference {ref!r} points at nothing")
            target = target[part]
        return _resolve(document, target, depth + 1)
    return {key: _resolve(document, value, depth) for key, value in node.items()}


def _parameters(document: dict[str, Any], params: list[Any], op_id: str) -> dict[str, Any]:
    """Path and query parameters as two object schemas (header/cookie ones are refused)."""
    groups: dict[str, dict[str, Any]] = {}
    for raw in params:
        param = _resolve(document, raw)
        where, name = param.get("in"), param.get("name")
        if where not in ("path", "query"):
            if param.get("required"):
                raise OpenApiError(f"{op_id}: required {where} parameter {name!r} is unsupported")
            continue
        schema = dict(param.get("schema") or {"type": "string"})
        if param.get("description") and "description" not in schema:
            schema["description"] = param["description"]
        group = groups.setdefault(where, {"type": "object", "properties": {}, "required": []})
        group["properties"][name] = schema
        if param.get("required") or where == "path":
            group["required"] = list(dict.fromkeys([*group["required"], name]))
    return groups


def _body(document: dict[str, Any], op: dict[str, Any], op_id: str) -> dict[str, Any] | None:
    """The JSON request body schema (an object schema), if the operation takes one."""
    request = _resolve(document, op.get("requestBody"))
    if not request:
        return None
    content = request.get("content", {})
    if "application/json" not in content:
        raise OpenApiError(f"{op_id}: only application/json request bodies are supported")
    schema = content["application/json"].get("schema") or {}
    if schema.get("type") != "object" or not isinstance(schema.get("properties"), dict):
        raise OpenApiError(f"{op_id}: the request body must be an object with properties")
    return dict(schema)


def generate_operations(document: dict[str, Any], include: list[str]) -> list[dict[str, Any]]:
    """Operation entries (the file's own format) for the allow-listed operationIds, in order."""
    found: dict[str, tuple[str, str, dict[str, Any], list[Any]]] = {}
    for path, item in (document.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        for method in METHODS:
            op = item.get(method)
            if isinstance(op, dict) and op.get("operationId"):
                shared = list(item.get("parameters", []))
                found[op["operationId"]] = (path, method, op, shared)
    entries = []
    for op_id in include:
        if op_id not in found:
            raise OpenApiError(f"operationId {op_id!r} is not in the document")
        path, method, op, shared = found[op_id]
        parameters = _parameters(document, [*shared, *op.get("parameters", [])], op_id)
        body = _body(document, op, op_id)
        if body is not None:
            parameters["body"] = body
        description = op.get("summary") or op.get("description") or f"{method.upper()} {path}"
        entries.append(
            {
                "name": sanitise(op_id)[:64],
                "description": str(description)[:2000],
                "method": method.upper(),
                "path": path,
                "parameters": parameters,
            }
        )
    return entries


def server_url(document: dict[str, Any]) -> str | None:
    """The first absolute server URL of the document, if any."""
    for server in document.get("servers") or []:
        url = server.get("url") if isinstance(server, dict) else None
        if isinstance(url, str) and url.startswith(("http://", "https://")):
            return url
    return None
