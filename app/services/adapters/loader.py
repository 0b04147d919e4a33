"""Read `CONFIG_DIR/app/*.json` at start-up; every error names the file, adapter and field."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app.services.adapters.openapi import (
    OpenApiError,
    generate_operations,
    read_document,
    server_url,
)
from app.services.adapters.operation import Operation, compile_operation
from app.services.adapters.schema import AdapterFile
from app.services.urls import ParsedUrl, SafeFetcher, UrlError, parse_url

APP_DIR = "app"


class AdapterConfigError(Exception):
    """An adapter file cannot be used; the message names the file, the adapter and the field."""


@dataclass(frozen=True)
class Adapter:
    """A validated adapter and its compiled operations."""

    config: AdapterFile
    base: ParsedUrl | None  # None only for a disabled OpenAPI adapter without a base URL
    operations: tuple[Operation, ...]
    source: Path

    @property
    def name(self) -> str:
        """The adapter's name (the `server` part of its tools' names)."""
        return self.config.name


def _where(raw: Any, loc: tuple[int | str, ...], own: int) -> str:
    """`operation 'x' (operations[i]), field 'f'` or `field 'f'` for an error location."""
    if len(loc) >= 2 and loc[0] == "operations" and isinstance(loc[1], int):
        ops = raw.get("operations") if isinstance(raw, dict) else None
        entry = ops[loc[1]] if isinstance(ops, list) and loc[1] < len(ops) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        origin = f"operations[{loc[1]}]" if loc[1] < own else "generated from openapi"
        label = f"operation {name!r} ({origin})" if name else origin
        field = ".".join(str(part) for part in loc[2:])
        return f"{label}, field {field!r}" if field else label
    return "field " + repr(".".join(str(part) for part in loc) or "(top level)")


def _format(prefix: str, raw: Any, error: ValidationError, own: int) -> str:
    """A readable message for a pydantic error (never quoting the offending value)."""
    problems = []
    for item in error.errors()[:5]:
        message = str(item["msg"]).removeprefix("Value error, ")
        loc = tuple(item["loc"])
        if ": " in message and message.split(": ")[0].replace(".", "").isidentifier():
            field, _, message = message.partition(": ")  # a cross-field check names its field
            loc = (*loc, *field.split("."))
        problems.append(f"{_where(raw, loc, own)}: {message}")
    return f"{prefix}: " + "; ".join(problems)


def _read(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise AdapterConfigError(f"{path}: cannot be read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise AdapterConfigError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(raw, dict):
        raise AdapterConfigError(f"{path}: expected a JSON object")
    return raw


async def _with_openapi(raw: dict[str, Any], path: Path, fetcher: SafeFetcher) -> dict[str, Any]:
    """The raw file plus the operations generated from its OpenAPI document."""
    source, include = raw.get("openapi"), raw.get("include_operations")
    if not isinstance(source, str) or not source or not include or not isinstance(include, list):
        return raw  # schema validation reports what is missing
    prefix = f"{path}: adapter {raw.get('name')!r}, field 'openapi'"
    try:
        document = await read_document(source, base_dir=path.parent, fetcher=fetcher)
        generated = generate_operations(document, [str(op) for op in include])
    except OpenApiError as exc:
        raise AdapterConfigError(f"{prefix}: {exc}") from None
    extended = {**raw, "operations": [*raw.get("operations", []), *generated]}
    if "base_url" not in raw and (url := server_url(document)):
        extended["base_url"] = url
    return extended


async def load_adapter_file(path: Path, *, fetcher: SafeFetcher) -> Adapter:
    """Validate one file (importing its OpenAPI operations when enabled)."""
    raw = _read(path)
    own = len(raw.get("operations", [])) if isinstance(raw.get("operations"), list) else 0
    full = await _with_openapi(raw, path, fetcher) if raw.get("enabled", True) else raw
    prefix = f"{path}: adapter {raw.get('name')!r}" if isinstance(raw.get("name"), str) else path
    try:
        config = AdapterFile.model_validate(full)
    except ValidationError as exc:
        raise AdapterConfigError(_format(str(prefix), full, exc, own)) from None
    base = parse_url(config.base_url) if config.base_url else None
    if config.enabled and base is not None and base.host.ip is not None:
        try:
            fetcher.guard.policy.check_address(base.host.ip, host=base.host.name, port=base.port)
        except UrlError as exc:
            raise AdapterConfigError(
                f"{prefix}, field 'base_url': {exc} (add it to URL_ALLOWLIST to allow it)"
            ) from None
    operations = tuple(compile_operation(config, op) for op in config.operations)
    return Adapter(config=config, base=base, operations=operations, source=path)


def _is_openapi_document(path: Path) -> bool:
    """An OpenAPI document (`info` and `paths`), which no adapter file can be."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False  # reported properly when loaded as an adapter
    return isinstance(raw, dict) and "info" in raw and "paths" in raw


async def load_adapters(config_dir: Path, *, fetcher: SafeFetcher) -> list[Adapter]:
    """Every `CONFIG_DIR/app/*.json` in name order; a missing directory means no adapters."""
    directory = Path(config_dir) / APP_DIR
    if not directory.is_dir():
        return []
    adapters: list[Adapter] = []
    seen: dict[str, Path] = {}
    for path in sorted(directory.glob("*.json")):
        if path.name.startswith((".", "_")) or path.name.endswith(".example.json"):
            continue  # hidden files and examples (scripts/init_config.py copies those)
        if _is_openapi_document(path):
            continue  # a spec kept next to the adapter that imports it
        adapter = await load_adapter_file(path, fetcher=fetcher)
        if adapter.name in seen:
            raise AdapterConfigError(
                f"{path}: field 'name': adapter {adapter.name!r} is already defined in "
                f"{seen[adapter.name]}"
            )
        seen[adapter.name] = path
        adapters.append(adapter)
    return adapters
