"""Tool input schemas cut down to the OpenAPI subset Gemini's `parameters` accepts.

The Gemini API (not Vertex) answers 400 "Unknown name ..." for JSON Schema keywords outside
its `Schema` type (`$schema`, `additionalProperties`, `$ref`, `oneOf`, `const`, ...), so MCP
tool schemas are rewritten: references inlined, `type: [x, "null"]` as `nullable`, `const`
as a one-value `enum`, `oneOf` as `anyOf`, everything else unknown dropped. Field list:
google-genai `types.Schema` and its `_transformers.process_schema`.
"""

from __future__ import annotations

from typing import Any

# keywords of Gemini's Schema that are copied as they are
_PLAIN = frozenset(
    {
        "format",
        "description",
        "nullable",
        "maxItems",
        "minItems",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
        "minProperties",
        "maxProperties",
        "title",
        "propertyOrdering",
    }
)
_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object"})
MAX_DEPTH = 32  # self-referencing schemas are cut here


def gemini_parameters(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The `parameters` of a function declaration; None when the tool takes no arguments
    (Gemini refuses an OBJECT without properties)."""
    if not isinstance(schema, dict) or not schema:
        return None
    converted = _convert(schema, schema.get("$defs") or schema.get("definitions") or {}, 0)
    if converted.get("type", "object") == "object" and not converted.get("properties"):
        return None
    converted.setdefault("type", "object")
    return converted


def _convert(schema: dict[str, Any], defs: dict[str, Any], depth: int) -> dict[str, Any]:
    """One schema node, recursively."""
    if depth > MAX_DEPTH:
        return {}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = defs.get(ref.rsplit("/", 1)[-1])
        merged = {**(target if isinstance(target, dict) else {}), **schema}
        merged.pop("$ref")
        return _convert(merged, defs, depth + 1)
    out: dict[str, Any] = {key: schema[key] for key in _PLAIN if key in schema}
    kind = schema.get("type")
    if isinstance(kind, list):
        if "null" in kind:
            out["nullable"] = True
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
        if len(kinds) > 1:
            out["anyOf"] = [{"type": k} for k in kinds if k in _TYPES]
    if isinstance(kind, str) and kind in _TYPES:
        out["type"] = kind
    variants = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(variants, list):
        options = [v for v in variants if isinstance(v, dict)]
        if any(v.get("type") == "null" for v in options):
            out["nullable"] = True
        options = [v for v in options if v.get("type") != "null"]
        if len(options) == 1 and "type" not in out:
            out.update(_convert(options[0], defs, depth + 1))
        elif options:
            out["anyOf"] = [_convert(v, defs, depth + 1) for v in options]
    _values(schema, out)
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {
            name: _convert(sub if isinstance(sub, dict) else {}, defs, depth + 1)
            for name, sub in schema["properties"].items()
        }
        out.setdefault("type", "object")
        required = schema.get("required")
        if isinstance(required, list):  # names without a property are refused
            names = [name for name in required if name in out["properties"]]
            if names:
                out["required"] = names
        if not out["properties"]:
            del out["properties"]
    if isinstance(schema.get("items"), dict):
        out["items"] = _convert(schema["items"], defs, depth + 1)
        out.setdefault("type", "array")
    elif out.get("type") == "array":
        out["items"] = {"type": "string"}  # Gemini needs the item type of an array
    return out


def _values(schema: dict[str, Any], out: dict[str, Any]) -> None:
    """`enum` and `const`: Gemini takes string enums only (others are dropped)."""
    values = schema.get("enum")
    if "const" in schema:
        values = [schema["const"]]
    if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
        out["enum"] = values
        out.setdefault("type", "string")
