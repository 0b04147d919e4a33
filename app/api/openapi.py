"""The OpenAPI document tells the truth: every error a route can answer, with its body and headers.

One mechanism instead of a `responses=` dict on every route:
- a dependency declares what it can answer with `@answers(401, 503)` (authentication, admin
  check, database session, rate limiter); every route that uses it, directly or through
  another dependency, documents those statuses;
- a route adds its own with `responses=errors(404, (409, "..."))`;
- validated parameters or a JSON body add 422 (and 400 for a body that cannot be read), a
  path parameter adds 404 (missing, or another user's: indistinguishable on purpose);
- every response documents `X-Request-ID`; 401 `WWW-Authenticate`, 429 `Retry-After`.
Error bodies are `ErrorBody` `{detail, code}`; 422 is FastAPI's list or `{detail, code}`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.routing import BaseRoute

from app.schemas.common import ErrorBody, ValidationErrorBody
from app.schemas.openai_compat import OpenAIErrorBody

F = TypeVar("F", bound=Callable[..., Any])
REF = "#/components/schemas/"
ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Bad request: `bad_request` (a body that cannot be read)",
    401: "Not authenticated: `not_authenticated`, `invalid_token`, `token_expired`, "
    "`token_revoked` (the access token), `invalid_credentials` (a password)",
    403: "`forbidden`: administrators only",
    404: "`not_found`: no such resource, or it belongs to another user",
    409: "`conflict`: the request clashes with stored data",
    410: "`gone`",
    413: "`payload_too_large`: the body is over the configured limit",
    422: "Invalid input: FastAPI's list of field errors with `code: validation_error`, or "
    "`{detail, code}` for a rule checked after the schema",
    429: "`rate_limited`: try again after `Retry-After` seconds",
    503: "`database_unavailable`: the database does not answer; `rate_limit_unavailable`: the "
    "rate-limit store (Redis) does not answer; `service_unavailable`: a part is not running",
}
HEADER_REF = "#/components/headers/"
HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "description": "The request id (echoed when the client sent a valid one); quote it "
        "in a bug report",
        "required": True,
        "schema": {"type": "string"},
    },
    "WWW-Authenticate": {"description": "`Bearer`", "required": True, "schema": {"type": "string"}},
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    },
}
STATUS_HEADERS = {401: ("WWW-Authenticate",), 429: ("Retry-After",)}
# models a route documents by hand (a body it reads itself): added to the components
_COMPONENTS: dict[str, type[BaseModel]] = {}


def answers(*statuses: int) -> Callable[[F], F]:
    """Mark a dependency: every route that uses it can answer these error statuses."""

    def mark(dependency: F) -> F:
        """Record the statuses on the dependency itself."""
        dependency.openapi_errors = statuses  # type: ignore[attr-defined]
        return dependency

    return mark


def errors(*entries: int | tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    """`responses=` for errors a route raises itself: a status, or (status, description)."""
    result: dict[int | str, dict[str, Any]] = {}
    for entry in entries:
        status, description = entry if isinstance(entry, tuple) else (entry, None)
        result[status] = {
            "model": ErrorBody,
            "description": description or ERROR_DESCRIPTIONS[status],
        }
    return result


def schema_ref(model: type[BaseModel]) -> dict[str, str]:
    """A `$ref` to a model's schema, which the document's components will hold."""
    _COMPONENTS[model.__name__] = model
    return {"$ref": f"{REF}{model.__name__}"}


def _calls(dependant: Dependant) -> Iterator[Any]:
    """Every dependency callable of a route, at any depth."""
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def api_routes(routes: list[BaseRoute]) -> Iterator[Any]:
    """Every API route with the prefix and dependencies of the routers that include it."""
    for context in routing.iter_route_contexts(routes):
        if isinstance(context.original_route, APIRoute):
            yield context


def validates_input(route: Any) -> bool:
    """Whether FastAPI validates parameters or a body of this route (a 422 with a list)."""
    return route.body_field is not None or _has_params(route.dependant)


def _has_params(dependant: Dependant) -> bool:
    """Whether the route or one of its dependencies reads a parameter FastAPI validates."""
    own = [*dependant.path_params, *dependant.query_params, *dependant.header_params]
    return bool(own or dependant.cookie_params) or any(
        _has_params(d) for d in dependant.dependencies
    )


def route_errors(route: Any) -> set[int]:
    """The error statuses a route's dependencies, parameters and body imply."""
    statuses: set[int] = set()
    for call in _calls(route.dependant):
        statuses.update(getattr(call, "openapi_errors", ()))
    if validates_input(route):
        statuses.add(422)
    if route.body_field is not None:
        statuses.add(400)  # a body that is not UTF-8 JSON
    if _has_path_params(route.dependant):
        statuses.add(404)
    return statuses


def _has_path_params(dependant: Dependant) -> bool:
    """Whether the route or one of its dependencies reads a path parameter."""
    return bool(dependant.path_params) or any(_has_path_params(d) for d in dependant.dependencies)


def _error_content(*shapes: str) -> dict[str, Any]:
    """A JSON body of one of these component schemas."""
    refs = [{"$ref": f"{REF}{name}"} for name in shapes]
    return {"application/json": {"schema": refs[0] if len(refs) == 1 else {"anyOf": refs}}}


def _complete_operation(operation: dict[str, Any], route: Any) -> None:
    """Add the implied errors, the 422 shapes and the headers to one operation."""
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status in route_errors(route) - {int(code) for code in responses if code.isdigit()}:
        responses[str(status)] = {
            "description": ERROR_DESCRIPTIONS[status],
            "content": _error_content("ErrorBody"),
        }
    if "422" in responses:
        # FastAPI's validation answers a list; a rule checked in a route or service a string
        declared = 422 in route.responses or "422" in route.responses
        shapes = ["ValidationErrorBody"] if validates_input(route) else []
        responses["422"]["content"] = _error_content(*shapes, *(["ErrorBody"] * declared))
        if not declared:
            responses["422"]["description"] = ERROR_DESCRIPTIONS[422]
    for code, entry in responses.items():
        headers = entry.setdefault("headers", {})
        status = int(code) if code.isdigit() else 0  # "4XX" or "default" name no status
        for name in ("X-Request-ID", *STATUS_HEADERS.get(status, ())):
            headers[name] = {"$ref": HEADER_REF + name}
    operation["responses"] = dict(sorted(responses.items()))


def _openai_errors(operation: dict[str, Any]) -> None:
    """`/v1` answers errors in OpenAI's shape, and a validation error with 400 (not 422)."""
    responses: dict[str, Any] = operation["responses"]
    invalid = responses.pop("422", None)
    if invalid is not None and "400" not in responses:
        responses["400"] = invalid
    for code, entry in responses.items():
        if code.isdigit() and int(code) >= 400:
            entry["content"] = _error_content("OpenAIErrorBody")
            entry["description"] = entry["description"].replace("`{detail, code}`", "an error")
    operation["responses"] = dict(sorted(responses.items()))


def complete_document(document: dict[str, Any], routes: list[BaseRoute]) -> dict[str, Any]:
    """Make a generated document tell every error, body shape and header (in place)."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    models: list[type[BaseModel]] = [
        ErrorBody,
        ValidationErrorBody,
        OpenAIErrorBody,
        *_COMPONENTS.values(),
    ]
    for model in models:
        generated = model.model_json_schema(ref_template=REF + "{model}")
        for name, schema in generated.pop("$defs", {}).items():
            schemas.setdefault(name, schema)  # FastAPI's own (same model) stays
        schemas[model.__name__] = generated
    components["headers"] = HEADERS
    for route in api_routes(routes):
        if not route.include_in_schema:
            continue
        for method in route.methods:
            operation = document["paths"].get(route.path_format, {}).get(method.lower())
            if operation is not None:
                _complete_operation(operation, route)
                if route.path_format.startswith("/v1/"):
                    _openai_errors(operation)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)  # replaced by ValidationErrorBody (our handler's shape)
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve the completed document at `/openapi.json` (built once, on first use)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's document, completed."""
        if app.openapi_schema is None:
            app.openapi_schema = complete_document(generate(), app.routes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
