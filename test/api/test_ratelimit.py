"""Rate limits: per account+IP and per IP on login, register, refresh; shared through Redis.

Each test starts its own app with tight limits on the shared test database. These tests do
not use the shared `app`, so tables are not emptied for them: every name is unique.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.main import create_app
from test.support.apps import make_settings
from test.support.assertions import assert_error
from test.support.auth import TEST_PASSWORD


@pytest.fixture
def env(database_url: str, log_dir: Path) -> dict[str, Any]:
    """What `make_settings` needs."""
    return {"database_url": database_url, "log_dir": log_dir}


def client_from(application: Any, ip: str = "127.0.0.1") -> httpx.AsyncClient:
    """An in-process client whose socket address is `ip`."""
    transport = httpx.ASGITransport(app=application, client=(ip, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@dataclass
class Running:
    """A started app; `client(ip)` opens a client closed when the app stops."""

    app: Any
    stack: AsyncExitStack

    async def client(self, ip: str = "127.0.0.1") -> httpx.AsyncClient:
        """A client connecting from `ip`."""
        return await self.stack.enter_async_context(client_from(self.app, ip))


@asynccontextmanager
async def started(env: dict[str, Any], **limits: Any) -> AsyncIterator[Running]:
    """A dedicated app with the given settings, running its lifespan."""
    application = create_app(make_settings(env["database_url"], env["log_dir"], **limits))
    async with (
        LifespanManager(application, startup_timeout=120, shutdown_timeout=60),
        AsyncExitStack() as stack,
    ):
        yield Running(application, stack)


def unique(prefix: str) -> str:
    """A username no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def register(client: httpx.AsyncClient, name: str) -> httpx.Response:
    """POST /auth/register."""
    return await client.post(
        "/auth/register",
        json={"email": f"{name}@example.com", "username": name, "password": TEST_PASSWORD},
    )


async def login(
    client: httpx.AsyncClient, name: str, password: str = "wrong password", **kw: Any
) -> httpx.Response:
    """POST /auth/login with JSON."""
    return await client.post("/auth/login", json={"username": name, "password": password}, **kw)


def assert_limited(response: httpx.Response, max_seconds: int = 60) -> None:
    """429 `rate_limited` with a usable Retry-After."""
    assert_error(response, 429, "rate_limited")
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit(), retry_after
    assert 1 <= int(retry_after) <= max_seconds


async def test_login_is_limited_per_account_and_ip(env: dict[str, Any]) -> None:
    async with started(env, rate_limit_login_account="3/minute") as running:
        client, far = await running.client(), await running.client("10.9.8.7")
        name, neighbour = unique("acct"), unique("acct")
        assert (await register(client, name)).status_code == 201
        for _ in range(3):
            assert_error(await login(client, name), 401, "invalid_credentials")
        # over the limit even with the right password, and whatever the spelling
        assert_limited(await login(client, name, TEST_PASSWORD))
        assert_limited(await login(client, name.upper(), TEST_PASSWORD))
        # ...and whichever name addresses it: the email shares the username's budget
        email_login = {"username": f"{name}@example.com", "password": TEST_PASSWORD}
        assert_limited(await client.post("/auth/login", json=email_login))
        # another account from the same address still has its own budget
        assert_error(await login(client, neighbour), 401, "invalid_credentials")
        # the same account from another address is not locked out
        assert (await login(far, name, TEST_PASSWORD)).status_code == 200


async def test_login_is_limited_per_ip_across_accounts(env: dict[str, Any]) -> None:
    limits = {"rate_limit_login_ip": "4/minute", "rate_limit_login_account": "100/minute"}
    async with started(env, **limits) as running:
        client, far = await running.client(), await running.client("10.9.8.6")
        for _ in range(4):
            assert_error(await login(client, unique("spray")), 401, "invalid_credentials")
        assert_limited(await login(client, unique("spray")))
        assert_error(await login(far, unique("spray")), 401, "invalid_credentials")


async def test_spoofed_forwarded_headers_do_not_reset_the_budget(env: dict[str, Any]) -> None:
    limits = {"rate_limit_login_ip": "2/minute", "rate_limit_login_account": "2/minute"}
    async with started(env, **limits) as running:
        client = await running.client()
        name = unique("spoof")
        for _ in range(2):
            assert_error(await login(client, name), 401, "invalid_credentials")
        for fake in ("203.0.113.7", "198.51.100.1, 203.0.113.8"):
            spoofed = {
                "X-Forwarded-For": fake,
                "X-Real-IP": fake.split(",")[0],
                "Forwarded": f"for={fake.split(',')[0]}",
            }
            assert_limited(await login(client, name, headers=spoofed))
            assert_limited(await login(client, unique("spoof"), headers=spoofed))


async def test_register_is_limited_per_ip(env: dict[str, Any]) -> None:
    async with started(env, rate_limit_register="2/hour") as running:
        client, far = await running.client(), await running.client("10.9.8.5")
        for _ in range(2):
            assert (await register(client, unique("reg"))).status_code == 201
        blocked = unique("reg")
        assert_limited(await register(client, blocked), max_seconds=3600)
        # the refused registration created nothing
        assert_error(await login(far, blocked, TEST_PASSWORD), 401, "invalid_credentials")
        assert (await register(far, unique("reg"))).status_code == 201


async def test_refresh_is_limited_per_ip(env: dict[str, Any]) -> None:
    async with started(env, rate_limit_refresh="2/minute") as running:
        client = await running.client()
        name = unique("refr")
        assert (await register(client, name)).status_code == 201
        token = (await login(client, name, TEST_PASSWORD)).json()["refresh_token"]
        for _ in range(2):
            response = await client.post("/auth/refresh", json={"refresh_token": token})
            assert response.status_code == 200, response.text
            token = response.json()["refresh_token"]
        limited = await client.post("/auth/refresh", json={"refresh_token": token})
        assert_limited(limited)
        # being limited did not spend the token: another address may still use it
        far = await running.client("10.9.8.4")
        ok = await far.post("/auth/refresh", json={"refresh_token": token})
        assert ok.status_code == 200


@pytest.mark.slow
async def test_redis_shares_the_counter_between_app_instances(
    env: dict[str, Any], private_redis: Any
) -> None:
    # counters live for a minute in the suite's Redis: a unique account keeps tests apart
    limits = {"redis_url": private_redis.url(15), "rate_limit_login_account": "3/minute"}
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(started(env, **limits))
        second = await stack.enter_async_context(started(env, **limits))
        assert first.app.state.vektor.limiter is not second.app.state.vektor.limiter
        one, two = await first.client(), await second.client()
        name = unique("shared")
        assert_error(await login(one, name), 401, "invalid_credentials")
        assert_error(await login(two, name), 401, "invalid_credentials")
        assert_error(await login(one, name), 401, "invalid_credentials")
        assert_limited(await login(two, name))
        assert_limited(await login(one, name))


async def test_unreachable_redis_fails_closed_for_login(env: dict[str, Any]) -> None:
    async with started(env, redis_url="redis://127.0.0.1:1/0") as running:
        client = await running.client()
        response = await login(client, unique("closed"))
        assert_error(response, 503, "rate_limit_unavailable")
