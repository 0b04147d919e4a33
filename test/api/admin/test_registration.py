"""REGISTRATION_MODE: open, approval (account_pending until an admin activates), closed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from app.core.config import RegistrationMode
from app.state import AppState
from test.support.assertions import assert_error
from test.support.auth import TEST_PASSWORD, log_in, registration


async def test_approval_mode_end_to_end(
    client: httpx.AsyncClient,
    state: AppState,
    root: dict[str, Any],
    registration_mode: Callable[[RegistrationMode], None],
) -> None:
    registration_mode(RegistrationMode.approval)
    response = await client.post("/auth/register", json=registration("newbie"))
    assert response.status_code == 201, response.text
    newbie = response.json()
    # the right password: told to wait; a wrong one: the usual answer (no account probing)
    response = await client.post(
        "/auth/login", json={"username": "newbie", "password": TEST_PASSWORD}
    )
    assert_error(response, 403, "account_pending")
    response = await client.post(
        "/auth/login", json={"username": "newbie", "password": "wrong password!"}
    )
    assert_error(response, 401, "invalid_credentials")
    await state.audit.flush()
    events = await client.get(
        "/admin/audit", params={"target_id": newbie["id"]}, headers=root["headers"]
    )
    assert [(e["action"], e["details"]) for e in events.json()["items"]] == [
        ("auth.login_failed", {"identifier": "newbie"}),
        ("auth.login_failed", {"identifier": "newbie", "reason": "account_pending"}),
        ("user.registered", {"pending": True}),
    ]
    listed = await client.get("/admin/users", params={"q": "newbie"}, headers=root["headers"])
    assert [(u["id"], u["is_active"]) for u in listed.json()["items"]] == [(newbie["id"], False)]
    response = await client.patch(
        f"/admin/users/{newbie['id']}", json={"is_active": True}, headers=root["headers"]
    )
    assert response.status_code == 200 and response.json()["is_active"] is True
    tokens = await log_in(client, "newbie")
    me = await client.get("/users/me", headers=tokens["headers"])
    assert me.status_code == 200 and me.json()["id"] == newbie["id"]


async def test_closed_mode_refuses_registration(
    client: httpx.AsyncClient,
    root: dict[str, Any],
    registration_mode: Callable[[RegistrationMode], None],
) -> None:
    registration_mode(RegistrationMode.closed)
    response = await client.post("/auth/register", json=registration("outsider"))
    assert_error(response, 403, "registration_closed")
    listed = await client.get("/admin/users", params={"q": "outsider"}, headers=root["headers"])
    assert listed.json()["items"] == []
    # existing accounts still log in
    assert (await log_in(client, "root"))["access_token"]


async def test_open_mode_is_the_default_and_api_info_says_so(client: httpx.AsyncClient) -> None:
    info = (await client.get("/api/info")).json()
    assert info["registration_mode"] == "open"
    assert {"admin_users", "audit_log"} <= set(info["capabilities"])
    response = await client.post("/auth/register", json=registration("walkin"))
    assert response.status_code == 201
    assert (await log_in(client, "walkin"))["access_token"]
