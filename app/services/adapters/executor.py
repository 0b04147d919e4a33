"""Adapters as the agent loop's tool source: `<adapter>__<operation>` over guarded HTTP."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import Any

from loguru import logger

from app.services.adapters.loader import Adapter
from app.services.adapters.operation import (
    ArgumentError,
    Operation,
    build_body,
    build_url,
    check_arguments,
    shape_response,
)
from app.services.tools import ProgressCallback, Tool, ToolOutcome, asks_first
from app.services.urls import FetchError, FetchLimits, SafeFetcher


class AdapterTools:
    """The enabled adapters' operations, called through one guarded, pooled HTTP client."""

    def __init__(
        self,
        *,
        adapters: list[Adapter],
        fetcher: SafeFetcher,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """Hold validated adapters; `environ` (default `os.environ`) is read at call time."""
        self.adapters = {a.name: a for a in adapters}
        self.fetcher = fetcher
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        self._ops: dict[str, tuple[Adapter, Operation]] = {
            op.qualified_name: (adapter, op)
            for adapter in adapters
            if adapter.config.enabled
            for op in adapter.operations
        }
        self._tools = {name: _tool(adapter, op) for name, (adapter, op) in self._ops.items()}

    async def aclose(self) -> None:
        """Close the HTTP client (calls in flight fail as errors)."""
        await self.fetcher.aclose()

    def _secret(self, adapter: Adapter) -> str | None:
        auth = adapter.config.auth
        return (self._environ.get(auth.env, "").strip() or None) if auth else None

    def is_available(self, adapter: Adapter) -> bool:
        """Enabled, and its auth variable (if it needs one) is set and non-empty."""
        return adapter.config.enabled and (
            adapter.config.auth is None or self._secret(adapter) is not None
        )

    def available(self, *, servers: Collection[str] | None) -> list[Tool]:
        """Operations of available adapters, limited to `servers` (None = every adapter)."""
        return [
            self._tools[name]
            for name, (adapter, _op) in self._ops.items()
            if (servers is None or adapter.name in servers) and self.is_available(adapter)
        ]

    def resolve(self, qualified_name: str) -> Tool | None:
        """The operation behind a qualified name."""
        return self._tools.get(qualified_name)

    def tools(self) -> list[Tool]:
        """Every operation of the enabled adapters, as `GET /mcp/tools` lists them."""
        return [
            tool if self.is_available(self._ops[name][0]) else replace(tool, available=False)
            for name, tool in self._tools.items()
        ]

    async def call(
        self,
        qualified_name: str,
        arguments: dict[str, Any],
        *,
        on_progress: ProgressCallback | None = None,
    ) -> ToolOutcome:
        """Run one operation by name (see `call_tool`)."""
        tool = self.resolve(qualified_name)
        if tool is None:
            return ToolOutcome.unknown(qualified_name)
        return await self.call_tool(tool, arguments, on_progress=on_progress)

    async def call_tool(
        self,
        tool: Tool,
        arguments: dict[str, Any],
        *,
        on_progress: ProgressCallback | None = None,
    ) -> ToolOutcome:
        """Run one operation; bad arguments and HTTP failures become `error` outcomes."""
        started = time.monotonic()
        qualified_name = tool.qualified_name
        adapter, op = self._ops[qualified_name]
        try:
            status, text = await self._run(adapter, op, arguments)
        except ArgumentError as exc:
            status, text = "error", f"Invalid arguments for {qualified_name}: {exc}"
        except FetchError as exc:
            status, text = "error", f"{qualified_name} failed: {exc}"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must not surface as a crashed chat turn
            logger.exception("adapter call {} failed unexpectedly", qualified_name)
            status, text = "error", f"Tool {qualified_name} failed: {type(exc).__name__}"
        secret = self._secret(adapter)
        if secret:
            text = text.replace(secret, "[redacted]")
        outcome = ToolOutcome.timed(status, text, started)
        logger.debug("adapter call {} -> {} in {} ms", qualified_name, status, outcome.duration_ms)
        return outcome

    async def _run(
        self, adapter: Adapter, op: Operation, arguments: dict[str, Any]
    ) -> tuple[str, str]:
        config, auth = adapter.config, adapter.config.auth
        secret = self._secret(adapter)
        if auth is not None and secret is None:
            return "error", f"{adapter.name} is not configured: {auth.env} is not set"
        if adapter.base is None:
            return "error", f"{adapter.name} has no base URL"
        values = check_arguments(op, arguments)
        headers = dict(config.headers)
        headers.setdefault("Accept", "application/json")
        auth_query = None
        if auth is not None and secret is not None:
            if auth.type == "header":
                headers[auth.name] = auth.prefix + secret
            else:
                auth_query = (auth.name, auth.prefix + secret)
        url = build_url(op, adapter.base, values, auth_query)
        body = build_body(op, values)
        if body is not None:
            headers["Content-Type"] = "application/json"
        response = await self.fetcher.fetch(
            url,
            method=op.config.method,
            headers=headers,
            body=body,
            limits=self._limits(adapter, op),
            secret_headers=[auth.name] if auth is not None and auth.type == "header" else [],
        )
        return shape_response(op, response)

    def _limits(self, adapter: Adapter, op: Operation) -> FetchLimits:
        config, base = adapter.config, self.fetcher.limits
        return replace(
            base,
            timeout_s=op.config.timeout_s or config.timeout_s or base.timeout_s,
            connect_timeout_s=config.connect_timeout_s or base.connect_timeout_s,
            max_bytes=config.max_response_bytes or base.max_bytes,
        )


def _tool(adapter: Adapter, op: Operation) -> Tool:
    return Tool(
        server=adapter.name,
        name=op.name,
        qualified_name=op.qualified_name,
        description=op.description,
        input_schema=op.input_schema,
        kind="adapter",
        approval=asks_first(adapter.config.approval, op.name),
    )
