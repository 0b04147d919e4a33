"""Accounts for tests: register, log in, bearer headers, the admin flag.

A user is the dict the API returns for a login plus `headers` (the bearer header) and `user`
(the registration answer), as the `alice` and `bob` fixtures give it.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import update

from app.models import User

TEST_PASSWORD = "correct horse battery"


def bearer(token: str) -> dict[str, str]:
    """An Authorization header."""
    return {"Authorization": f"Bearer {token}"}


def registration(name: str, password: str = TEST_PASSWORD, **extra: Any) -> dict[str, Any]:
    """A registration body for `name` (email `<name>@example.com`)."""
    return {"email": f"{name}@example.com", "username": name, "password": password, **extra}


async def log_in(
    client: httpx.AsyncClient, name: str = "alice", password: str = TEST_PASSWORD, **kw: Any
) -> dict[str, Any]:
    """Another session of an existing user: the token pair plus `headers`."""
    response = await client.post("/auth/login", json={"username": name, "password": password}, **kw)
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    tokens["headers"] = bearer(tokens["access_token"])
    return tokens


async def register_and_login(
    client: httpx.AsyncClient, name: str = "alice", password: str = TEST_PASSWORD
) -> dict[str, Any]:
    """Create a user and log in; returns the token pair plus `headers` and `user`."""
    response = await client.post("/auth/register", json=registration(name, password))
    assert response.status_code == 201, response.text
    tokens = await log_in(client, name, password)
    tokens["user"] = response.json()
    return tokens


async def make_admin(state: Any, user_id: str | uuid.UUID) -> None:
    """Give a user the admin flag (no route does that: it is an operator's job)."""
    async with state.session_factory() as session:
        await session.execute(
            update(User).where(User.id == uuid.UUID(str(user_id))).values(is_admin=True)
        )
        await session.commit()
