"""`/users`: profile, account deletion and password change."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from test.api.test_auth import USER_FIELDS
from test.support.assertions import assert_error
from test.support.auth import TEST_PASSWORD, register_and_login

NEW_PASSWORD = "a brand new passphrase"


async def login(client: httpx.AsyncClient, name: str, password: str) -> httpx.Response:
    """POST /auth/login with JSON."""
    return await client.post("/auth/login", json={"username": name, "password": password})


# --- profile ------------------------------------------------------------------------------


async def test_read_me(client: httpx.AsyncClient, alice: dict[str, Any]) -> None:
    response = await client.get("/users/me", headers=alice["headers"])
    assert response.status_code == 200
    assert response.json() == alice["user"]
    assert set(response.json()) == USER_FIELDS


async def test_update_profile_fields(client: httpx.AsyncClient, alice: dict[str, Any]) -> None:
    response = await client.put(
        "/users/me",
        json={"full_name": "Alice A.", "avatar_url": "https://img.example.com/a.png"},
        headers=alice["headers"],
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["full_name"] == "Alice A."
    assert body["avatar_url"] == "https://img.example.com/a.png"
    assert body["email"] == "alice@example.com"  # fields not sent are kept
    assert body["updated_at"] >= alice["user"]["updated_at"]
    assert (await client.get("/users/me", headers=alice["headers"])).json() == body


async def test_change_email_and_username(client: httpx.AsyncClient, alice: dict[str, Any]) -> None:
    response = await client.put(
        "/users/me",
        json={"email": "Alice.New@Example.com", "username": "Alice_2"},
        headers=alice["headers"],
    )
    assert response.status_code == 200, response.text
    assert response.json()["email"] == "alice.new@example.com"
    assert response.json()["username"] == "alice_2"
    assert (await login(client, "alice_2", TEST_PASSWORD)).status_code == 200
    assert (await login(client, "alice.new@example.com", TEST_PASSWORD)).status_code == 200
    assert_error(await login(client, "alice", TEST_PASSWORD), 401, "invalid_credentials")
    # the old names are free again
    await register_and_login(client, "alice")


async def test_keeping_ones_own_email_is_not_a_conflict(
    client: httpx.AsyncClient, alice: dict[str, Any]
) -> None:
    response = await client.put(
        "/users/me",
        json={"email": "ALICE@example.com", "username": "alice"},
        headers=alice["headers"],
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"email": "bob@example.com"}, "email_taken"),
        ({"email": "BOB@Example.com"}, "email_taken"),
        ({"username": "bob"}, "username_taken"),
        ({"username": "BOB"}, "username_taken"),
    ],
)
async def test_update_profile_conflicts(
    client: httpx.AsyncClient,
    alice: dict[str, Any],
    bob: dict[str, Any],
    body: dict[str, str],
    code: str,
) -> None:
    assert_error(await client.put("/users/me", json=body, headers=alice["headers"]), 409, code)
    assert (await client.get("/users/me", headers=alice["headers"])).json() == alice["user"]


@pytest.mark.parametrize(
    "body",
    [
        {"is_admin": True},
        {"id": "00000000-0000-0000-0000-000000000000"},
        {"password_hash": "x"},
        {"nickname": "ally"},
        {"email": "not-an-email"},
        {"username": "no spaces"},
        {"email": None},
        {"username": None},
    ],
)
async def test_update_profile_rejects_invalid_fields(
    client: httpx.AsyncClient, alice: dict[str, Any], body: dict[str, Any]
) -> None:
    response = await client.put("/users/me", json=body, headers=alice["headers"])
    assert response.status_code == 422, response.text
    me = (await client.get("/users/me", headers=alice["headers"])).json()
    assert me == alice["user"]
    assert me["is_admin"] is False


async def test_profile_needs_a_token(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/users/me"), 401, "not_authenticated")
    assert_error(await client.put("/users/me", json={}), 401, "not_authenticated")


# --- account deletion ---------------------------------------------------------------------


async def test_delete_account_with_wrong_password(
    client: httpx.AsyncClient, alice: dict[str, Any]
) -> None:
    response = await client.request(
        "DELETE", "/users/me", json={"password": "wrong password"}, headers=alice["headers"]
    )
    assert_error(response, 401, "invalid_credentials")
    assert (await client.get("/users/me", headers=alice["headers"])).status_code == 200
    assert (await login(client, "alice", TEST_PASSWORD)).status_code == 200


async def test_delete_account(
    client: httpx.AsyncClient, alice: dict[str, Any], bob: dict[str, Any]
) -> None:
    await client.put("/users/preferences", json={"theme": "dark"}, headers=alice["headers"])
    response = await client.request(
        "DELETE", "/users/me", json={"password": TEST_PASSWORD}, headers=alice["headers"]
    )
    assert response.status_code == 204
    assert response.content == b""
    assert_error(await client.get("/users/me", headers=alice["headers"]), 401, "token_revoked")
    assert_error(await login(client, "alice", TEST_PASSWORD), 401, "invalid_credentials")
    assert (await client.get("/users/me", headers=bob["headers"])).status_code == 200
    # the data went with the account: the name can be registered afresh, with defaults
    fresh = await register_and_login(client, "alice")
    assert fresh["user"]["id"] != alice["user"]["id"]
    prefs = await client.get("/users/preferences", headers=fresh["headers"])
    assert prefs.json()["theme"] == "system"


async def test_delete_account_needs_the_password_field(
    client: httpx.AsyncClient, alice: dict[str, Any]
) -> None:
    assert (
        await client.request("DELETE", "/users/me", headers=alice["headers"])
    ).status_code == 422
    assert (await client.get("/users/me", headers=alice["headers"])).status_code == 200


# --- password change ----------------------------------------------------------------------


async def change_password(
    client: httpx.AsyncClient, headers: dict[str, str], current: str, new: str
) -> httpx.Response:
    """POST /users/change-password."""
    return await client.post(
        "/users/change-password",
        json={"current_password": current, "new_password": new},
        headers=headers,
    )


async def test_change_password_with_wrong_current(
    client: httpx.AsyncClient, alice: dict[str, Any]
) -> None:
    response = await change_password(client, alice["headers"], "not it at all", NEW_PASSWORD)
    assert_error(response, 401, "invalid_credentials")
    assert (await login(client, "alice", TEST_PASSWORD)).status_code == 200
    assert_error(await login(client, "alice", NEW_PASSWORD), 401, "invalid_credentials")


async def test_change_password(client: httpx.AsyncClient, alice: dict[str, Any]) -> None:
    other = (await login(client, "alice", TEST_PASSWORD)).json()
    response = await change_password(client, alice["headers"], TEST_PASSWORD, NEW_PASSWORD)
    assert response.status_code == 204
    assert response.content == b""
    # every other session is signed out, access and refresh alike
    other_headers = {"Authorization": f"Bearer {other['access_token']}"}
    assert_error(await client.get("/users/me", headers=other_headers), 401, "token_revoked")
    refreshed = await client.post("/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert_error(refreshed, 401, "token_revoked")
    # the session that changed it carries on
    assert (await client.get("/users/me", headers=alice["headers"])).status_code == 200
    sessions = (await client.get("/auth/sessions", headers=alice["headers"])).json()
    assert [s["current"] for s in sessions] == [True]
    own = await client.post("/auth/refresh", json={"refresh_token": alice["refresh_token"]})
    assert own.status_code == 200
    assert (await login(client, "alice", NEW_PASSWORD)).status_code == 200
    assert_error(await login(client, "alice", TEST_PASSWORD), 401, "invalid_credentials")


@pytest.mark.parametrize("new", ["short", "é" * 40, "x" * 73])
async def test_change_password_validates_the_new_one(
    client: httpx.AsyncClient, alice: dict[str, Any], new: str
) -> None:
    response = await change_password(client, alice["headers"], TEST_PASSWORD, new)
    assert response.status_code == 422, response.text
    assert (await login(client, "alice", TEST_PASSWORD)).status_code == 200


async def test_change_password_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await change_password(client, {}, TEST_PASSWORD, NEW_PASSWORD)
    assert_error(response, 401, "not_authenticated")
