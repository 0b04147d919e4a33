"""`config/mcp_servers.json`: the validated list of MCP servers the pool connects to."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.core.redact import display_url
from app.services.tools import ApprovalPolicy

CONFIG_FILE = "mcp_servers.json"
SERVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

Transport = Literal["stdio", "streamable_http", "sse"]
Strategy = Literal["round_robin", "least_busy", "failover"]


class McpConfigError(Exception):
    """`mcp_servers.json` cannot be used; the message names the file, the server and the field."""


class ServerConfig(BaseModel):
    """One MCP server: how to reach its replicas and how to treat its tools."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    transport: Transport
    # stdio
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    replicas: int = Field(default=1, ge=1, le=32)
    # HTTP (streamable_http, sse)
    endpoints: list[str] = Field(default_factory=list)
    headers: dict[str, str] = Field(default_factory=dict)
    # both
    strategy: Strategy = "round_robin"
    timeout_s: float = Field(default=30, gt=0, le=3600)
    connect_timeout_s: float = Field(default=10, gt=0, le=600)
    health_interval_s: float = Field(default=15, gt=0, le=3600)
    allow_tools: list[str] | None = None
    deny_tools: list[str] = Field(default_factory=list)
    idempotent_tools: list[str] = Field(default_factory=list)
    approval: ApprovalPolicy = "never"  # calls that wait for the user's approval
    protocol: Literal["auto", "legacy"] = "auto"
    enabled: bool = True
    # circuit breaker and result size (optional tuning)
    breaker_failures: int = Field(default=3, ge=1, le=100)
    breaker_reset_s: float | None = Field(default=None, gt=0, le=3600)
    max_result_bytes: int = Field(default=64 * 1024, ge=256, le=16 * 1024 * 1024)

    @model_validator(mode="after")
    def _check_transport_fields(self) -> ServerConfig:
        """Each transport needs its own fields and refuses the other's."""
        if self.transport == "stdio":
            if not self.command:
                raise ValueError("field 'command': required for transport 'stdio'")
            if self.endpoints:
                raise ValueError("field 'endpoints': not used by transport 'stdio'")
            if self.headers:
                raise ValueError("field 'headers': not used by transport 'stdio'")
            return self
        if self.command is not None:
            raise ValueError(f"field 'command': not used by transport '{self.transport}'")
        if not self.endpoints:
            raise ValueError(
                f"field 'endpoints': transport '{self.transport}' needs at least one URL"
            )
        if "replicas" in self.model_fields_set:
            raise ValueError("field 'replicas': HTTP replicas are the 'endpoints' list")
        for index, url in enumerate(self.endpoints):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                shown = display_url(url)  # the URL may carry credentials
                raise ValueError(f"field 'endpoints[{index}]': {shown!r} is not an http(s) URL")
        if len(set(self.endpoints)) != len(self.endpoints):
            raise ValueError("field 'endpoints': the same URL is listed twice")
        return self

    @property
    def reset_after_s(self) -> float:
        """How long an open circuit waits before a half-open trial."""
        return self.breaker_reset_s if self.breaker_reset_s is not None else self.health_interval_s

    @property
    def targets(self) -> list[str]:
        """One label per replica: `stdio:<command>#<n>`, or the URL's display form.

        Labels are what status pages, metrics and logs show; only the connection itself
        uses `endpoints` (which may carry credentials)."""
        if self.transport == "stdio":
            return [f"stdio:{self.command}#{index}" for index in range(self.replicas)]
        labels = [display_url(url) for url in self.endpoints]
        # two URLs that differ only in their credentials would share a label
        return [
            f"{label} [{index}]" if labels.count(label) > 1 else label
            for index, label in enumerate(labels)
        ]


class McpConfig(BaseModel):
    """Every configured server, by name (disabled ones included)."""

    model_config = ConfigDict(frozen=True)

    servers: dict[str, ServerConfig] = Field(default_factory=dict)
    source: str = CONFIG_FILE

    @property
    def enabled(self) -> list[ServerConfig]:
        """The servers the pool connects to."""
        return [server for server in self.servers.values() if server.enabled]


def expand_vars(value: str, environ: Mapping[str, str], *, where: str) -> str:
    """Replace `${VAR}` (or `${VAR:-default}`) with the environment's value."""

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise McpConfigError(f"{where}: environment variable {name} is not set")

    return _VAR.sub(substitute, value)


def _error_message(source: str, name: str, exc: ValidationError) -> str:
    """One readable line per problem: file, server, field."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if loc:
            lines.append(f"{source}: server '{name}': field '{loc}': {msg}")
        else:
            lines.append(f"{source}: server '{name}': {msg}")
    return "; ".join(lines)


def _expand_endpoints(raw: dict[str, Any], environ: Mapping[str, str], *, where: str) -> Any:
    """`${VAR}` expanded in each endpoint URL (anything that is not a string list stays)."""
    endpoints = raw.get("endpoints")
    if not isinstance(endpoints, list) or raw.get("enabled", True) is False:
        return endpoints  # a disabled server may name variables that are not set
    return [
        expand_vars(url, environ, where=f"{where}: field 'endpoints[{index}]'")
        if isinstance(url, str)
        else url
        for index, url in enumerate(endpoints)
    ]


def parse_server(name: str, raw: Any, *, source: str, environ: Mapping[str, str]) -> ServerConfig:
    """Validate one server entry and expand `${VAR}` in its endpoints, headers and env."""
    if not SERVER_NAME.match(name):
        raise McpConfigError(
            f"{source}: server '{name}': the name must be 1-40 letters, digits, '_' or '-'"
        )
    if not isinstance(raw, dict):
        raise McpConfigError(f"{source}: server '{name}': must be a JSON object")
    data = {**raw, "name": name}
    if "endpoints" in raw:
        data["endpoints"] = _expand_endpoints(raw, environ, where=f"{source}: server '{name}'")
    try:
        server = ServerConfig.model_validate(data)
    except ValidationError as exc:
        raise McpConfigError(_error_message(source, name, exc)) from None
    if not server.enabled:
        return server
    headers = {
        key: expand_vars(value, environ, where=f"{source}: server '{name}': field 'headers.{key}'")
        for key, value in server.headers.items()
    }
    env = {
        key: expand_vars(value, environ, where=f"{source}: server '{name}': field 'env.{key}'")
        for key, value in server.env.items()
    }
    return server.model_copy(update={"headers": headers, "env": env})


def load_mcp_config(config_dir: Path, *, environ: Mapping[str, str] | None = None) -> McpConfig:
    """Read and validate `config_dir/mcp_servers.json`; a missing file means no servers."""
    path = Path(config_dir) / CONFIG_FILE
    source = str(path)
    if not path.exists():
        return McpConfig(servers={}, source=source)
    env = os.environ if environ is None else environ
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise McpConfigError(f"{source}: cannot be read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise McpConfigError(f"{source}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(data, dict) or not isinstance(data.get("servers", {}), dict):
        raise McpConfigError(f"{source}: expected an object with a 'servers' object")
    unknown = set(data) - {"servers", "$schema", "_comment"}
    if unknown:
        raise McpConfigError(f"{source}: unknown top-level field(s): {', '.join(sorted(unknown))}")
    servers = {
        name: parse_server(name, raw, source=source, environ=env)
        for name, raw in data.get("servers", {}).items()
    }
    return McpConfig(servers=servers, source=source)
