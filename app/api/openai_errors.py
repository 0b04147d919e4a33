"""Errors on `/v1/*` in OpenAI's shape: `{"error": {message, type, code, param}}`.

The app's handlers stay the one source of statuses, codes and headers; on `/v1` paths their
`{detail, code}` body is rewritten, and FastAPI's 422 becomes OpenAI's 400 (the SDKs raise
`BadRequestError` for it). Every other route keeps `{detail, code}`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from app.services.openai_compat.wire import error_object

V1_PREFIX = "/v1/"
Handler = Callable[[Request, Exception], Awaitable[Response] | Response]


def is_v1(request: Request) -> bool:
    """Whether the request is for the OpenAI-compatible API."""
    path: str = request.scope.get("path", "")
    return path.startswith(V1_PREFIX) or path == "/v1"


def _field(loc: Any) -> str:
    """`messages.[0].content` from a pydantic location (the leading `body` dropped)."""
    parts = [f"[{p}]" if isinstance(p, int) else str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts)


def _validation(exc: RequestValidationError) -> JSONResponse:
    """FastAPI's validation errors as one OpenAI 400 (the first error names `param`)."""
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "Invalid request"}
    param = _field(first.get("loc", ())) or None
    message = "; ".join(
        f"{_field(err.get('loc', ())) or 'body'}: {err.get('msg', '')}" for err in errors[:5]
    )
    body = error_object(message or "Invalid request", status=400, code="invalid_request")
    body["error"]["param"] = param
    return JSONResponse(body, status_code=400)


def _reshape(response: Response, exc: Exception) -> Response:
    """The same status and headers with OpenAI's error body."""
    try:
        original = orjson.loads(bytes(response.body))
    except (orjson.JSONDecodeError, TypeError):
        original = {}
    detail = original.get("detail") if isinstance(original, dict) else None
    code = original.get("code") if isinstance(original, dict) else None
    message = detail if isinstance(detail, str) else "Request failed"
    body = error_object(
        message,
        status=response.status_code,
        code=code if isinstance(code, str) else None,
        param=getattr(exc, "param", None),
    )
    headers = {
        k: v
        for k, v in response.headers.items()
        if k.lower() not in ("content-length", "content-type")
    }
    return JSONResponse(body, status_code=response.status_code, headers=headers)


def _wrapped(handler: Handler) -> Handler:
    """`handler`, with OpenAI's body on /v1 paths."""

    async def handle(request: Request, exc: Exception) -> Response:
        """The app's answer, reshaped on /v1."""
        if request.scope.get("type") == "http" and is_v1(request):
            if isinstance(exc, RequestValidationError):
                return _validation(exc)
            result = handler(request, exc)
            response = await result if isinstance(result, Awaitable) else result
            return _reshape(response, exc)
        result = handler(request, exc)
        return await result if isinstance(result, Awaitable) else result

    return handle


def install_openai_errors(app: FastAPI) -> None:
    """Wrap every installed exception handler (install after all of them)."""
    for key, handler in list(app.exception_handlers.items()):
        app.exception_handlers[key] = _wrapped(handler)
