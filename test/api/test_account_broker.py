"""The schemathesis login broker puts back an account that a test renamed or deleted."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from test.support.account_broker import AccountBroker

PASSWORD = "correct-horse-battery"


async def log_in(broker: AccountBroker, name: str) -> dict[str, str]:
    """Log in through the broker (its blocking calls run on a thread: the server is on ours)."""
    status, body = await asyncio.to_thread(broker.login, name)
    assert status == 200, body
    return {"Authorization": f"Bearer {json.loads(body)['access_token']}"}


async def test_a_renamed_repassworded_or_deleted_account_can_log_in_again(
    app: Any, live: httpx.AsyncClient, live_url: str, database_url: str
) -> None:
    accounts = {"alice": True, "bob": False}
    broker = AccountBroker(
        app_url=live_url, database_url=database_url, password=PASSWORD, accounts=accounts
    )
    await asyncio.to_thread(broker.ensure_accounts)
    headers = await log_in(broker, "alice")
    alice = (await live.get("/users/me", headers=headers)).json()
    assert (alice["username"], alice["is_admin"]) == ("alice", True)

    renamed = {"username": "renamed", "email": "renamed@example.com"}
    assert (await live.put("/users/me", json=renamed, headers=headers)).status_code == 200
    change = {"current_password": PASSWORD, "new_password": "another password"}
    response = await live.post("/users/change-password", json=change, headers=headers)
    assert response.status_code == 204
    bob = await log_in(broker, "bob")  # bob takes alice's old email meanwhile
    squat = {"email": "alice@example.com"}
    assert (await live.put("/users/me", json=squat, headers=bob)).status_code == 200

    headers = await log_in(broker, "alice")
    again = (await live.get("/users/me", headers=headers)).json()
    assert (again["id"], again["username"], again["email"]) == (
        alice["id"],
        "alice",
        "alice@example.com",
    )
    assert broker.restored == {"alice": 1, "bob": 0}

    delete = await live.request("DELETE", "/users/me", json={"password": PASSWORD}, headers=headers)
    assert delete.status_code == 204
    recreated = (await live.get("/users/me", headers=await log_in(broker, "alice"))).json()
    assert recreated["id"] != alice["id"] and recreated["is_admin"] is True
    assert broker.restored == {"alice": 2, "bob": 0}
