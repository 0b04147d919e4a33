"""The error hierarchy and the one handler that turns it into `{"detail", "code"}`."""

from __future__ import annotations

from fastapi import FastAPI, Request, routing
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match


class AppError(Exception):
    """A failure the client should see, with an HTTP status and a machine code."""

    status_code: int = 400
    code: str = "bad_request"
    detail: str = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.detail = detail or self.detail
        self.code = code or self.code
        self.headers = headers or {}
        super().__init__(self.detail)


class BadRequest(AppError):
    """The request is well-formed but cannot be served as asked."""


class Unauthorized(AppError):
    """Missing or unusable credentials."""

    status_code = 401
    code = "not_authenticated"
    detail = "Not authenticated"

    def __init__(self, detail: str | None = None, *, code: str | None = None) -> None:
        super().__init__(detail, code=code, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(AppError):
    """Authenticated but not allowed."""

    status_code = 403
    code = "forbidden"
    detail = "Not allowed"


class NotFound(AppError):
    """Missing, or belongs to someone else (indistinguishable on purpose)."""

    status_code = 404
    code = "not_found"
    detail = "Not found"


class Conflict(AppError):
    """The request clashes with stored state."""

    status_code = 409
    code = "conflict"
    detail = "Conflict"


class PayloadTooLarge(AppError):
    """The body is over a configured size limit."""

    status_code = 413
    code = "payload_too_large"
    detail = "Request body too large"


class UnsupportedMediaType(AppError):
    """The content is of a type the server does not take."""

    status_code = 415
    code = "unsupported_file_type"
    detail = "Unsupported file type"


class InvalidInput(AppError):
    """Semantically invalid input found after schema validation."""

    status_code = 422
    code = "validation_error"
    detail = "Invalid input"


class RateLimited(AppError):
    """Too many requests; `Retry-After` says when to try again."""

    status_code = 429
    code = "rate_limited"
    detail = "Too many requests"

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})
        self.retry_after = max(1, retry_after)


class QuotaExceeded(RateLimited):
    """A usage quota is spent; `Retry-After` is the start of the next window (UTC)."""

    code = "quota_exceeded"
    detail = "Usage quota exceeded"


class UpstreamError(AppError):
    """A provider or tool server failed."""

    status_code = 502
    code = "upstream_error"
    detail = "Upstream service failed"


class ServiceUnavailable(AppError):
    """A required dependency is unreachable."""

    status_code = 503
    code = "service_unavailable"
    detail = "Service unavailable"


class DatabaseUnavailable(ServiceUnavailable):
    """The database is down, frozen or locked: try again shortly (never a 500)."""

    code = "database_unavailable"
    detail = "The database is unavailable; try again shortly"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)})


DATABASE_RETRY_AFTER_S = 5
_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def error_body(detail: str, code: str) -> dict[str, str]:
    """The documented error body."""
    return {"detail": detail, "code": code}


def app_error_response(exc: AppError) -> JSONResponse:
    """The response of an `AppError`: its status, `{detail, code}` and headers."""
    return JSONResponse(
        error_body(exc.detail, exc.code), status_code=exc.status_code, headers=exc.headers
    )


async def _app_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return app_error_response(exc)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path.

    Starlette's 405 names only the methods of the first route that matched the path, so
    `OPTIONS /users/me` said `Allow: GET` although PUT and DELETE are served there too."""
    methods: set[str] = set()
    for route in routing.iter_route_contexts(request.app.routes):
        if route.methods and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods
    return sorted(methods)


async def _http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405 and (methods := allowed_methods(request)):
        headers["Allow"] = ", ".join(methods)
    return JSONResponse(
        error_body(str(exc.detail), code), status_code=exc.status_code, headers=headers
    )


async def _validation_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {key: value for key, value in err.items() if key in ("type", "loc", "msg")}
        for err in exc.errors()
    ]
    return JSONResponse({"detail": errors, "code": "validation_error"}, status_code=422)


async def _unexpected_error_handler(request: Request, _exc: Exception) -> JSONResponse:
    """The 500 body for a bug: documented shape plus the request id to quote in a report.

    Starlette runs this in its outermost middleware, outside the one that adds
    `X-Request-ID`, so the header is set here; the exception is re-raised after the
    response is sent, so the server still logs its traceback to error.log.
    """
    request_id = getattr(request.state, "request_id", None)
    return JSONResponse(
        error_body("Internal server error", "internal_error"),
        status_code=500,
        headers={"X-Request-ID": request_id} if isinstance(request_id, str) else None,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers; unexpected exceptions still surface as 500 and in error.log."""
    app.add_exception_handler(Exception, _unexpected_error_handler)
    app.add_exception_handler(AppError, _app_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
