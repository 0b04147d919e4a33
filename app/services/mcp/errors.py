"""Sorting call failures into: never sent, maybe run, or answered badly."""

from __future__ import annotations

import asyncio

import anyio
import httpx2
from mcp import MCPError
from mcp_types import CONNECTION_CLOSED, INVALID_REQUEST, PARSE_ERROR, REQUEST_TIMEOUT
from pydantic import ValidationError

from app.core.redact import redact_urls
from app.services.mcp.transport import LOST, NOT_SENT
from app.services.mcp.types import Attempt

MAX_ERROR_TEXT = 300
# a restarted HTTP server rejects the old session id before running anything
UNKNOWN_SESSION = ("Session not found", "Session terminated")


def _leaves(exc: BaseException) -> list[BaseException]:
    """The innermost exceptions of a (possibly nested) exception group."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def describe(exc: BaseException) -> str:
    """A short, log-safe description of what went wrong (URLs in their display form)."""
    leaves = [e for e in _leaves(exc) if not isinstance(e, asyncio.CancelledError)] or [exc]
    first = leaves[0]
    text = str(first) or type(first).__name__
    if isinstance(first, MCPError):
        text = first.error.message or text
    elif not text.startswith(type(first).__name__):
        text = f"{type(first).__name__}: {text}"
    # HTTP libraries name the URL they failed on, credentials included
    return redact_urls(text)[:MAX_ERROR_TEXT]


def classify(exc: Exception, *, closed_before: bool) -> Attempt:
    """What a failed `tools/call` means for retrying it elsewhere."""
    text = describe(exc)
    if isinstance(exc, MCPError):
        code = exc.code
        if code == NOT_SENT:
            return Attempt("not_sent", text)
        if code == LOST:
            return Attempt("lost", text)
        if code == CONNECTION_CLOSED:
            return Attempt("not_sent" if closed_before else "lost", "connection closed")
        if code == REQUEST_TIMEOUT:
            return Attempt("timeout", text)
        if code == INVALID_REQUEST and text in UNKNOWN_SESSION:
            return Attempt("not_sent", "the server no longer knows this session")
        if code == PARSE_ERROR:
            return Attempt("rejected", f"invalid response from the server: {text}")
        return Attempt("rejected", f"server error {code}: {text}")
    if isinstance(exc, anyio.ClosedResourceError | anyio.BrokenResourceError | anyio.EndOfStream):
        return Attempt("not_sent" if closed_before else "lost", "connection closed")
    if isinstance(exc, httpx2.TransportError | OSError):
        return Attempt("lost", text)
    if isinstance(exc, ValidationError):
        return Attempt("rejected", f"invalid response from the server: {text}")
    return Attempt("rejected", f"the call failed: {text}")
