"""`/auth`: registration, login (form and JSON) and the device-session list."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from test.support.assertions import assert_error
from test.support.auth import TEST_PASSWORD, log_in, register_and_login, registration

USER_FIELDS = {"id", "email", "username", "full_name", "avatar_url", "is_admin", "created_at"}
USER_FIELDS |= {"updated_at"}
SESSION_FIELDS = {"id", "user_agent", "ip", "created_at", "last_used_at", "current"}


# --- register -----------------------------------------------------------------------------


async def test_register_returns_the_user_without_secrets(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/register", json=registration("carol", full_name="Carol C"))
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == USER_FIELDS
    assert body["username"] == "carol"
    assert body["email"] == "carol@example.com"
    assert body["full_name"] == "Carol C"
    assert body["is_admin"] is False
    uuid.UUID(body["id"])
    assert TEST_PASSWORD not in response.text


async def test_register_cannot_make_an_admin(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/register", json=registration("mallory", is_admin=True))
    assert response.status_code == 422
    login = await client.post(
        "/auth/login", json={"username": "mallory", "password": TEST_PASSWORD}
    )
    assert_error(login, 401, "invalid_credentials")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"email": "alice@example.com", "username": "other"}, "email_taken"),
        ({"email": "ALICE@Example.COM", "username": "other"}, "email_taken"),
        ({"email": "other@example.com", "username": "alice"}, "username_taken"),
        ({"email": "other@example.com", "username": "AlIcE"}, "username_taken"),
    ],
)
async def test_register_conflicts(
    client: httpx.AsyncClient, alice: dict[str, Any], body: dict[str, str], code: str
) -> None:
    response = await client.post("/auth/register", json={**body, "password": TEST_PASSWORD})
    assert_error(response, 409, code)


@pytest.mark.parametrize(
    "body",
    [
        registration("dave", email="not-an-email"),
        registration("dave", email="dave@"),
        registration("ab"),
        registration("x" * 33),
        registration("has space"),
        registration("semi;colon"),
        registration("ümlaut"),
        registration("dave", password="short7!"),
        registration("dave", password="é" * 40),  # 40 characters but 80 UTF-8 bytes
        registration("dave", password="a" * 73),
        {"email": "dave@example.com", "username": "dave"},
        registration("dave", unexpected="field"),
    ],
)
async def test_register_rejects_invalid_input(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    response = await client.post("/auth/register", json=body)
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], list)
    # nothing was created: the would-be account cannot log in
    password = body.get("password", TEST_PASSWORD)
    login = await client.post("/auth/login", json={"username": "dave", "password": password})
    assert_error(login, 401, "invalid_credentials")


async def test_password_of_exactly_72_bytes_is_accepted(client: httpx.AsyncClient) -> None:
    password = "é" * 36  # 72 bytes: the largest bcrypt reads in full
    await register_and_login(client, "erin", password)
    almost = "é" * 35 + "e"  # differs only in the last byte: not silently truncated
    login = await client.post("/auth/login", json={"username": "erin", "password": almost})
    assert_error(login, 401, "invalid_credentials")


# --- login --------------------------------------------------------------------------------


def assert_token_pair(body: dict[str, Any]) -> None:
    """`TokenPair` with the documented default lifetimes."""
    assert set(body) == {
        "access_token",
        "refresh_token",
        "token_type",
        "expires_in",
        "refresh_expires_in",
    }
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 60 * 60
    assert body["refresh_expires_in"] == 30 * 24 * 60 * 60
    assert body["access_token"] != body["refresh_token"]


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        ("json", {"username": "alice"}),
        ("json", {"username": "ALICE"}),
        ("json", {"username": "alice@example.com"}),
        ("json", {"email": "Alice@Example.com"}),
        ("form", {"username": "alice"}),
        ("form", {"username": "alice@example.com", "grant_type": "password"}),
    ],
)
async def test_login_by_username_or_email(
    client: httpx.AsyncClient, alice: dict[str, Any], kind: str, fields: dict[str, str]
) -> None:
    payload = {**fields, "password": TEST_PASSWORD}
    if kind == "json":
        response = await client.post("/auth/login", json=payload)
    else:
        response = await client.post("/auth/login", data=payload)
    assert response.status_code == 200, response.text
    assert_token_pair(response.json())
    me = await client.get(
        "/users/me", headers={"Authorization": f"Bearer {response.json()['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["id"] == alice["user"]["id"]


@pytest.mark.parametrize("kind", ["json", "form"])
async def test_login_failure_looks_the_same_for_unknown_users(
    client: httpx.AsyncClient, alice: dict[str, Any], kind: str
) -> None:
    send = (
        (lambda body: client.post("/auth/login", json=body))
        if kind == "json"
        else (lambda body: client.post("/auth/login", data=body))
    )
    wrong_password = await send({"username": "alice", "password": "not the password"})
    unknown_user = await send({"username": "nobody", "password": "not the password"})
    too_long = await send({"username": "alice", "password": "é" * 40})
    for response in (wrong_password, unknown_user, too_long):
        assert_error(response, 401, "invalid_credentials")
    assert wrong_password.json() == unknown_user.json() == too_long.json()


@pytest.mark.parametrize(
    "body",
    [{"username": "alice"}, {"password": TEST_PASSWORD}, {"username": "", "password": "x"}],
)
async def test_login_needs_an_account_name_and_password(
    client: httpx.AsyncClient, alice: dict[str, Any], body: dict[str, str]
) -> None:
    assert (await client.post("/auth/login", json=body)).status_code == 422
    assert (await client.post("/auth/login", data=body)).status_code == 422


# --- device sessions ----------------------------------------------------------------------


async def login_as(client: httpx.AsyncClient, name: str, agent: str) -> dict[str, str]:
    """Log in again from another 'device'; returns the bearer header."""
    headers = {"User-Agent": agent, "X-Forwarded-For": "203.0.113.9"}
    return dict((await log_in(client, name, headers=headers))["headers"])


async def test_sessions_list_devices_and_mark_the_current_one(
    client: httpx.AsyncClient, alice: dict[str, Any]
) -> None:
    phone = await login_as(client, "alice", "VektorPhone/1.0")
    response = await client.get("/auth/sessions", headers=phone)
    assert response.status_code == 200
    sessions = response.json()
    assert len(sessions) == 2
    assert all(set(s) == SESSION_FIELDS for s in sessions)
    current = [s for s in sessions if s["current"]]
    assert len(current) == 1
    assert current[0]["user_agent"] == "VektorPhone/1.0"
    # the socket address, not the client-supplied X-Forwarded-For
    assert {s["ip"] for s in sessions} == {"127.0.0.1"}
    from_first = (await client.get("/auth/sessions", headers=alice["headers"])).json()
    assert [s["id"] for s in from_first if s["current"]] != [current[0]["id"]]


async def test_revoke_one_device(client: httpx.AsyncClient, alice: dict[str, Any]) -> None:
    phone = await login_as(client, "alice", "VektorPhone/1.0")
    sessions = (await client.get("/auth/sessions", headers=alice["headers"])).json()
    phone_id = next(s["id"] for s in sessions if s["user_agent"] == "VektorPhone/1.0")
    response = await client.delete(f"/auth/sessions/{phone_id}", headers=alice["headers"])
    assert response.status_code == 204
    assert response.content == b""
    assert_error(await client.get("/users/me", headers=phone), 401, "token_revoked")
    assert (await client.get("/users/me", headers=alice["headers"])).status_code == 200
    remaining = (await client.get("/auth/sessions", headers=alice["headers"])).json()
    assert [s["id"] for s in remaining] == [s["id"] for s in sessions if s["id"] != phone_id]
    again = await client.delete(f"/auth/sessions/{phone_id}", headers=alice["headers"])
    assert_error(again, 404, "not_found")


async def test_another_users_session_is_not_found(
    client: httpx.AsyncClient, alice: dict[str, Any], bob: dict[str, Any]
) -> None:
    bobs = (await client.get("/auth/sessions", headers=bob["headers"])).json()
    response = await client.delete(f"/auth/sessions/{bobs[0]['id']}", headers=alice["headers"])
    missing = await client.delete(f"/auth/sessions/{uuid.uuid4()}", headers=alice["headers"])
    assert_error(response, 404, "not_found")
    assert response.json() == missing.json()
    assert (await client.get("/users/me", headers=bob["headers"])).status_code == 200
    malformed = await client.delete("/auth/sessions/not-a-uuid", headers=alice["headers"])
    assert malformed.status_code == 422


async def test_sessions_need_a_token(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/auth/sessions"), 401, "not_authenticated")
    assert_error(await client.delete(f"/auth/sessions/{uuid.uuid4()}"), 401, "not_authenticated")


async def test_concurrent_registrations_of_one_email(client: httpx.AsyncClient) -> None:
    import asyncio

    results = await asyncio.gather(
        client.post("/auth/register", json=registration("twin", email="twin@example.com")),
        client.post("/auth/register", json=registration("twin2", email="twin@example.com")),
    )
    assert sorted(r.status_code for r in results) == [201, 409], [r.text for r in results]
    loser = next(r for r in results if r.status_code == 409)
    assert_error(loser, 409, "email_taken")
