"""Cross-cutting behaviour: request ids, the error body, health, info, endpoint catalogue."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.main import create_app
from test.support.apps import make_settings
from test.support.assertions import assert_error

HEX_ID = re.compile(r"^[0-9a-f]{32}$")


@pytest.mark.parametrize(
    ("method", "path", "json_body", "status"),
    [
        ("GET", "/health", None, 200),
        ("GET", "/users/me", None, 401),
        ("GET", "/no/such/route", None, 404),
        ("POST", "/auth/register", {"email": "x"}, 422),
        ("POST", "/auth/login", {"username": "ghost", "password": "nope nope"}, 401),
    ],
)
async def test_request_id_is_echoed_on_every_response(
    client: httpx.AsyncClient, method: str, path: str, json_body: Any, status: int
) -> None:
    sent = "client-id.42:retry-1"
    response = await client.request(method, path, json=json_body, headers={"X-Request-ID": sent})
    assert response.status_code == status
    assert response.headers["x-request-id"] == sent


@pytest.mark.parametrize("path", ["/health", "/users/me", "/no/such/route"])
async def test_request_id_is_generated_when_absent(client: httpx.AsyncClient, path: str) -> None:
    first = await client.get(path)
    second = await client.get(path)
    assert HEX_ID.match(first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@pytest.mark.parametrize("unsafe", ["has spaces", "x" * 200, "<script>", "a\tb"])
async def test_unsafe_request_ids_are_replaced(client: httpx.AsyncClient, unsafe: str) -> None:
    response = await client.get("/health", headers={"X-Request-ID": unsafe})
    assert HEX_ID.match(response.headers["x-request-id"])


async def test_framework_errors_use_the_error_body(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/no/such/route"), 404, "not_found")
    assert_error(await client.delete("/health"), 405, "method_not_allowed")


async def test_validation_errors_keep_fastapis_shape(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/register", json={"email": "x"})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    assert isinstance(body["detail"], list)
    assert {"type", "loc", "msg"} <= set(body["detail"][0])


async def test_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["database"]["status"] == "ok"


async def test_info(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/info")).json()
    assert body["name"] == "Vektor Backend"
    assert body["api_version"] == "v1"
    assert {"auth", "users", "preferences"} <= set(body["capabilities"])
    assert body["limits"]["access_token_expire_minutes"] == 60


async def test_endpoint_catalogue_marks_protected_routes(client: httpx.AsyncClient) -> None:
    catalogue = {e["path"]: e for e in (await client.get("/api/endpoints")).json()}
    assert catalogue["/auth/login"]["auth_required"] is False
    assert catalogue["/auth/login"]["methods"] == ["POST"]
    assert catalogue["/auth/register"]["auth_required"] is False
    assert catalogue["/users/me"]["auth_required"] is True
    assert catalogue["/users/me"]["methods"] == ["DELETE", "GET", "PUT"]
    assert catalogue["/auth/sessions"]["auth_required"] is True
    assert catalogue["/users/me"]["summary"] == "The current user's profile."
    assert "auth" in catalogue["/auth/login"]["tags"]


async def test_swagger_can_authorize_with_the_password_flow(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    schemes = schema["components"]["securitySchemes"]
    flow = next(s for s in schemes.values() if s.get("type") == "oauth2")
    assert flow["flows"]["password"]["tokenUrl"] == "/auth/login"
    login_body = schema["paths"]["/auth/login"]["post"]["requestBody"]["content"]
    assert {"application/x-www-form-urlencoded", "application/json"} <= set(login_body)
    assert (await client.get("/docs")).status_code == 200


async def test_an_unexpected_error_keeps_the_body_and_request_id(
    database_url: str, log_dir: Path
) -> None:
    """A bug still answers `{"detail","code"}` with X-Request-ID, and is not swallowed."""
    application = create_app(make_settings(database_url, log_dir))

    async def explode() -> None:
        raise RuntimeError("a bug")

    application.add_api_route("/test-only/explode", explode)
    async with LifespanManager(application, startup_timeout=120):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            sent = await client.get("/test-only/explode", headers={"X-Request-ID": "bug-report-1"})
            generated = await client.get("/test-only/explode")
        for response in (sent, generated):
            assert response.status_code == 500
            assert response.json() == {"detail": "Internal server error", "code": "internal_error"}
            assert "a bug" not in response.text
        assert sent.headers["x-request-id"] == "bug-report-1"
        assert HEX_ID.match(generated.headers["x-request-id"])
        # the exception still reaches the server (which logs it to error.log)
        raising = httpx.ASGITransport(app=application, raise_app_exceptions=True)
        async with httpx.AsyncClient(transport=raising, base_url="http://t") as client:
            with pytest.raises(RuntimeError, match="a bug"):
                await client.get("/test-only/explode")
