"""One adapter operation as a tool: its input schema, the request it builds, the text it returns."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from app.services.adapters.schema import PLACEHOLDER, AdapterFile, OperationConfig
from app.services.tools.naming import qualified_name
from app.services.tools.render import cap, clean_text
from app.services.urls import FetchResponse, ParsedUrl, parse_url

MAX_ERROR_SNIPPET = 500


class ArgumentError(ValueError):
    """The model's arguments do not fit the operation (the message says how)."""


@dataclass(frozen=True)
class Operation:
    """A validated operation, ready to turn arguments into a request."""

    adapter: str
    config: OperationConfig
    qualified_name: str
    input_schema: dict[str, Any]
    locations: dict[str, str]  # argument name -> "path" | "query" | "body"
    defaults: dict[str, Any]
    max_result_bytes: int
    validator: Draft202012Validator = field(repr=False)

    @property
    def name(self) -> str:
        """The operation's own name."""
        return self.config.name

    @property
    def description(self) -> str:
        """What the model reads about the tool."""
        return self.config.description


def compile_operation(adapter: AdapterFile, config: OperationConfig) -> Operation:
    """Merge the path, query and body schemas into the one object schema the model sees."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    defs: dict[str, Any] = {}
    locations: dict[str, str] = {}
    for where, schema in config.parameters.groups().items():
        for name, prop in schema["properties"].items():
            properties[name] = prop
            locations[name] = where
        required += [n for n in schema.get("required", []) if n in schema["properties"]]
        if where == "path":
            required += [n for n in schema["properties"] if n not in required]
        defs.update(schema.get("$defs", {}))
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        input_schema["required"] = list(dict.fromkeys(required))
    if defs:
        input_schema["$defs"] = defs
    defaults = {
        name: prop["default"]
        for name, prop in properties.items()
        if isinstance(prop, dict) and "default" in prop
    }
    return Operation(
        adapter=adapter.name,
        config=config,
        qualified_name=qualified_name(adapter.name, config.name),
        input_schema=input_schema,
        locations=locations,
        defaults=defaults,
        max_result_bytes=config.response.max_bytes or adapter.max_result_bytes,
        validator=Draft202012Validator(input_schema),
    )


def _scalar(value: Any) -> str:
    """A query or path value as text (booleans as JSON spells them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def check_arguments(op: Operation, arguments: Any) -> dict[str, Any]:
    """The arguments with defaults filled in, or ArgumentError naming the first problem."""
    if not isinstance(arguments, dict):
        raise ArgumentError("the arguments must be a JSON object")
    values = {**op.defaults, **arguments}
    error = best_match(op.validator.iter_errors(values))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path)
        message = error.message if len(error.message) <= 300 else error.message[:300] + "..."
        raise ArgumentError(f"{where}: {message}" if where else message)
    return values


def build_url(
    op: Operation, base: ParsedUrl, values: dict[str, Any], auth_query: tuple[str, str] | None
) -> ParsedUrl:
    """Fill the path template (each value encoded as one segment) and the query string."""

    def segment(match: Any) -> str:
        text = _scalar(values[match.group(1)])
        if text in ("", ".", ".."):
            raise ArgumentError(f"{match.group(1)}: {text!r} is not a usable path value")
        return quote(text, safe="")

    path = PLACEHOLDER.sub(segment, op.config.path)
    pairs: list[tuple[str, str]] = []
    for name, where in op.locations.items():  # in the order the file declares them
        value = values.get(name)
        if where != "query" or value is None:
            continue
        items = value if isinstance(value, list) else [value]
        pairs += [(name, _scalar(item)) for item in items]
    if auth_query is not None:
        pairs.append(auth_query)
    prefix = base.path.rstrip("/")
    url = parse_url(f"{base.scheme}://{base.netloc}{prefix}{path}")
    if url.origin != base.origin or not url.path.startswith(prefix):
        raise ArgumentError("the arguments would leave the service's base URL")
    return url.with_query(urlencode(pairs, quote_via=quote) if pairs else None)


def build_body(op: Operation, values: dict[str, Any]) -> bytes | None:
    """The JSON body from the body arguments (None when the operation has none)."""
    body = {k: v for k, v in values.items() if op.locations.get(k) == "body"}
    if not body and op.config.parameters.body is None:
        return None
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def _pointer(data: Any, pointer: str) -> Any:
    """RFC 6901 lookup; KeyError when nothing is there."""
    for raw in pointer.split("/")[1:] if pointer else []:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(data, list) and token.isdigit() and int(token) < len(data):
            data = data[int(token)]
        elif isinstance(data, dict) and token in data:
            data = data[token]
        else:
            raise KeyError(pointer)
    return data


def _select(data: Any, fields: list[str]) -> Any:
    """Keep only `fields` (dotted paths) of an object, or of each object in a list."""
    if isinstance(data, list):
        return [_select(item, fields) for item in data]
    if not isinstance(data, dict):
        return data
    kept: dict[str, Any] = {}
    missing = object()
    for dotted in fields:
        parts = dotted.split(".")
        value: Any = data
        for part in parts:
            value = value.get(part, missing) if isinstance(value, dict) else missing
        if value is missing:
            continue
        target = kept
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return kept


def shape_response(op: Operation, response: FetchResponse) -> tuple[str, str]:
    """`(status, text)` for the model: errors for HTTP failures, else the shaped, capped body."""
    if response.status >= 400:
        snippet = clean_text(response.text())[:MAX_ERROR_SNIPPET]
        return "error", f"HTTP {response.status} from {op.adapter}: {snippet}".rstrip(": ")
    shape = op.config.response
    is_json = "json" in response.content_type
    if not is_json:
        return "ok", cap(clean_text(response.text()), max_bytes=op.max_result_bytes)
    try:
        data = json.loads(response.body) if response.body else None
    except ValueError:
        return "error", f"{op.adapter} answered with invalid JSON"
    try:
        data = _pointer(data, shape.pointer)
    except KeyError:
        return "error", f"the answer of {op.adapter} has nothing at {shape.pointer}"
    if shape.fields:
        data = _select(data, shape.fields)
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return "ok", cap(clean_text(text), max_bytes=op.max_result_bytes)
