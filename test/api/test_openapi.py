"""The OpenAPI document is valid and true: every answer the app gives is one it documents."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from test.support.assertions import assert_error, assert_openai_error

STREAMS = {("post", "/chat/stream"), ("get", "/chat/stream/{message_id}"), ("get", "/sync/stream")}
ADMIN_ONLY = ("/mcp/", "/metrics")
JSON = {"Content-Type": "application/json"}


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    """The served `/openapi.json`."""
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) for every documented operation."""
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield method, path, operation


def references(node: Any) -> Iterator[str]:
    """Every `$ref` anywhere in a document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def resolve(document: dict[str, Any], ref: str) -> Any:
    """The target of a local `#/...` reference (KeyError when it points nowhere)."""
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_the_document_is_valid_and_every_reference_resolves(document: dict[str, Any]) -> None:
    validate(document)  # OpenAPI 3.1 structure
    dangling = []
    for ref in set(references(document)):
        try:
            resolve(document, ref)
        except KeyError:
            dangling.append(ref)
    assert dangling == []  # e.g. the login body's `LoginRequest`


def error_schema(response: dict[str, Any]) -> Any:
    """The JSON schema of a documented response."""
    return response["content"]["application/json"]["schema"]


def test_every_operation_documents_its_errors(document: dict[str, Any]) -> None:
    missing: list[str] = []

    def expect(ok: bool, what: str) -> None:
        if not ok:
            missing.append(what)

    for method, path, operation in operations(document):
        responses = operation["responses"]
        where = f"{method.upper()} {path}"
        openai = path.startswith("/v1/")  # OpenAI's error shape; validation is its 400
        shape = "OpenAIErrorBody" if openai else "ErrorBody"
        error_body = {"$ref": f"#/components/schemas/{shape}"}
        expect("500" not in responses, f"{where}: documents a 500")
        for status, response in responses.items():
            expect("X-Request-ID" in response.get("headers", {}), f"{where} {status}: X-Request-ID")
            if (
                status.startswith(("4", "5"))
                and status != "422"
                and path not in ("/health", "/health/ready")
            ):
                expect(error_schema(response) == error_body, f"{where} {status}: {shape}")
        if operation.get("security"):
            expect("401" in responses, f"{where}: 401")
            expect(
                "WWW-Authenticate" in responses.get("401", {}).get("headers", {}),
                f"{where}: 401 WWW-Authenticate",
            )
            expect("503" in responses, f"{where}: 503 (the session is looked up in the database)")
        if path.startswith(ADMIN_ONLY):
            expect("403" in responses, f"{where}: 403")
        if "{" in path:
            expect("404" in responses, f"{where}: 404")
        if "requestBody" in operation or operation.get("parameters"):
            expect(("400" if openai else "422") in responses, f"{where}: 422")
        if "429" in responses:
            expect("Retry-After" in responses["429"]["headers"], f"{where}: 429 Retry-After")
        if (method, path) in STREAMS:
            expect(set(responses["200"]["content"]) == {"text/event-stream"}, f"{where}: SSE only")
    for path in ("/auth/register", "/auth/login", "/auth/refresh"):
        expect("429" in document["paths"][path]["post"]["responses"], f"POST {path}: 429")
    assert missing == []


def check_against_document(
    document: dict[str, Any], method: str, path: str, response: httpx.Response
) -> None:
    """The answer's status, body and headers are the documented ones."""
    documented = document["paths"][path][method.lower()]["responses"]
    status = str(response.status_code)
    assert status in documented, (
        f"{method} {path} answered an undocumented {status}: {response.text}"
    )
    entry = documented[status]
    root = {"components": document["components"], **error_schema(entry)}
    errors = [e.message for e in Draft202012Validator(root).iter_errors(response.json())]
    assert errors == [], (response.json(), errors)
    for name, header in entry.get("headers", {}).items():
        header = resolve(document, header["$ref"]) if "$ref" in header else header
        if header.get("required"):
            assert name in response.headers, f"{method} {path} {status}: no {name} header"


async def test_every_kind_of_error_answer_matches_the_document(
    client: httpx.AsyncClient, document: dict[str, Any], alice: dict[str, Any]
) -> None:
    auth = alice["headers"]
    taken = {"email": "alice@example.com", "username": "alice", "password": "long enough"}
    not_utf8 = {"content": b'{"all_devices": "\x80"}', "headers": {**auth, **JSON}}
    cases: list[tuple[str, str, str, dict[str, Any], int]] = [
        # (method, documented path, URL, request keywords, status)
        ("POST", "/auth/login", "/auth/login", {"content": b"not json"}, 422),  # string detail
        ("POST", "/auth/login", "/auth/login", {"json": {"username": "x", "password": "y"}}, 401),
        ("POST", "/auth/register", "/auth/register", {"json": {"email": "x"}}, 422),  # a list
        ("POST", "/auth/register", "/auth/register", {"json": taken}, 409),
        ("POST", "/auth/refresh", "/auth/refresh", {"json": {"refresh_token": "forged"}}, 401),
        ("PUT", "/users/me", "/users/me", {"json": {"email": None}, "headers": auth}, 422),
        ("PUT", "/users/preferences", "/users/preferences",
         {"json": {"theme": None}, "headers": auth}, 422),
        ("GET", "/users/me", "/users/me", {}, 401),
        ("GET", "/mcp/servers", "/mcp/servers", {"headers": auth}, 403),
        ("GET", "/chat/history/{conversation_id}", f"/chat/history/{uuid.uuid4()}",
         {"headers": auth}, 404),
        ("GET", "/chat/history", "/chat/history?cursor=zz", {"headers": auth}, 400),
        ("GET", "/sync/changes", "/sync/changes?since=zz", {"headers": auth}, 410),
        ("POST", "/auth/logout", "/auth/logout", not_utf8, 400),
        ("DELETE", "/auth/sessions/{session_id}", "/auth/sessions/x", {"headers": auth}, 422),
    ]  # fmt: skip
    for method, path, url, kwargs, status in cases:
        response = await client.request(method, url, **kwargs)
        assert response.status_code == status, (method, url, response.text)
        check_against_document(document, method, path, response)


async def test_the_document_and_the_app_agree_on_nested_json_text(
    client: httpx.AsyncClient, document: dict[str, Any], alice: dict[str, Any]
) -> None:
    """A U+0000 deep inside preferences `extra` (a key or a string) is refused by the app and
    by the document alike; schemathesis once sent a NUL in a nested key the document allowed."""
    body = document["paths"]["/users/preferences"]["put"]["requestBody"]
    schema = {**body["content"]["application/json"]["schema"], "components": document["components"]}
    validator = Draft202012Validator(schema)
    nested = {"a": [1, 2.5, True, None, "x", {"b": {"c": ["d"]}}], "": {"e": None}}
    cases: list[tuple[dict[str, Any], int]] = [
        ({"extra": nested}, 200),
        ({"extra": {"a": {"b": {"k\x00": 1}}}}, 422),  # a nested key
        ({"extra": {"a": [{"b": "v\x00"}]}}, 422),  # a nested string
        ({"extra": {"\x00": 1}}, 422),  # a top-level key
    ]
    for payload, status in cases:
        response = await client.put("/users/preferences", json=payload, headers=alice["headers"])
        assert response.status_code == status, (payload, response.text)
        assert validator.is_valid(payload) is (status == 200), payload


async def test_405_allows_every_method_of_the_path(
    client: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    """`OPTIONS /users/me` used to say `Allow: GET`: only the first of its three routes."""
    wrong = {}
    for path, methods in document["paths"].items():
        url = path.replace("{name}", "time")
        for param in ("conversation_id", "session_id", "message_id"):
            url = url.replace("{" + param + "}", str(uuid.uuid4()))
        response = await client.options(url)
        if path.startswith("/v1/"):  # the OpenAI-compatible API answers in OpenAI's shape
            assert_openai_error(response, 405, "method_not_allowed")
        else:
            assert_error(response, 405, "method_not_allowed")
        allowed = {m.strip() for m in response.headers["allow"].split(",")}
        if allowed != {m.upper() for m in methods}:
            wrong[path] = response.headers["allow"]
    assert wrong == {}
    response = await client.patch("/users/me")
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "DELETE, GET, PUT"


def test_chat_routes_match_first_while_the_docs_keep_their_order(
    document: dict[str, Any],
) -> None:
    """Routes are matched in order (~1.5 µs each): the chat stream's are tried first; the
    documentation still lists auth, users, chat... through `tags`."""
    from app.main import create_app

    routes = create_app().router.routes
    prefixes = [getattr(getattr(r, "original_router", None), "prefix", None) for r in routes]
    # only FastAPI's own /openapi.json (one plain regex) comes before them
    assert prefixes.index("/chat") <= 1, [getattr(r, "path", r) for r in routes]
    assert [tag["name"] for tag in document["tags"]][:3] == ["auth", "users", "chat"]
    assert {tag for _, _, op in operations(document) for tag in op.get("tags", [])} <= {
        tag["name"] for tag in document["tags"]
    }
