"""Personal API keys: `/users/me/api-keys`, `Authorization: Bearer vk-…` on the user routes,
the credential routes that refuse keys, expiry, revocation (also across instances),
deactivation, the `last_used_at` throttle, and keys kept out of the logs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from loguru import logger
from sqlalchemy import select, update

from app.models import ApiKey, AuditEvent
from app.state import AppState
from test.api.sync.test_revocation import ends_revoked, still_live, sync_stream
from test.support.assertions import assert_error
from test.support.auth import TEST_PASSWORD, bearer, make_admin, register_and_login
from test.support.logs import read_logs
from test.support.sse import names, stream_chat

KEYS = "/users/me/api-keys"
LIST_FIELDS = {"id", "name", "prefix", "created_at", "last_used_at", "expires_at"}
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


async def create_key(
    client: httpx.AsyncClient, account: dict[str, Any], **body: Any
) -> dict[str, Any]:
    """A new key of `account` (the creation answer, with `headers` for the key added)."""
    response = await client.post(
        KEYS, json={"name": "laptop script", **body}, headers=account["headers"]
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    created["headers"] = bearer(created["key"])
    return created


async def key_row(state: AppState, key_id: str) -> ApiKey:
    """The stored row of a key."""
    async with state.session_factory() as session:
        row = await session.get(ApiKey, uuid.UUID(key_id))
        assert row is not None
        return row


async def set_key(state: AppState, key_id: str, **values: Any) -> None:
    """Change a stored key behind the API's back (expiry, last use)."""
    async with state.session_factory() as session:
        await session.execute(update(ApiKey).where(ApiKey.id == uuid.UUID(key_id)).values(values))
        await session.commit()


async def test_create_list_and_delete(client: httpx.AsyncClient, alice: dict[str, Any]) -> None:
    created = await create_key(client, alice, name="ci")
    assert set(created) - {"headers"} == {"id", "name", "prefix", "key", "created_at", "expires_at"}
    key, prefix = created["key"], created["prefix"]
    assert key.startswith("vk-") and len(key) >= 3 + 8 + 43 and key.startswith(prefix)
    assert len(prefix) == 11 and created["name"] == "ci" and created["expires_at"] is None

    listed = await client.get(KEYS, headers=alice["headers"])
    assert listed.status_code == 200
    assert [set(item) for item in listed.json()] == [LIST_FIELDS]
    assert listed.json()[0]["prefix"] == prefix and listed.json()[0]["id"] == created["id"]
    assert key[len(prefix) :] not in listed.text

    gone = await client.delete(f"{KEYS}/{created['id']}", headers=alice["headers"])
    assert gone.status_code == 204
    assert (await client.get(KEYS, headers=alice["headers"])).json() == []
    assert_error(
        await client.delete(f"{KEYS}/{created['id']}", headers=alice["headers"]), 404, "not_found"
    )


async def test_two_keys_differ_and_expiry_is_set(
    client: httpx.AsyncClient, alice: dict[str, Any]
) -> None:
    first = await create_key(client, alice)
    second = await create_key(client, alice, expires_in_days=30)
    assert first["key"] != second["key"] and first["prefix"] != second["prefix"]
    expires = datetime.fromisoformat(second["expires_at"])
    created = datetime.fromisoformat(second["created_at"])
    assert expires - created == timedelta(days=30)
    assert len((await client.get(KEYS, headers=alice["headers"])).json()) == 2


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "x" * 101},
        {"name": None},
        {"name": "ok", "expires_in_days": 0},
        {"name": "ok", "expires_in_days": 3651},
        {"name": "ok", "expires_in_days": True},
        {"name": "ok", "expires_in_days": "5"},
        {"name": "ok", "scopes": ["all"]},
        {"name": "nul\u0000byte"},
    ],
)
async def test_create_rejects_invalid_input(
    client: httpx.AsyncClient, alice: dict[str, Any], body: dict[str, Any]
) -> None:
    response = await client.post(KEYS, json=body, headers=alice["headers"])
    assert response.status_code == 422, response.text
    assert (await client.get(KEYS, headers=alice["headers"])).json() == []


async def test_a_key_works_on_the_user_routes_and_chat(
    client: httpx.AsyncClient, alice: dict[str, Any]
) -> None:
    created = await create_key(client, alice)
    me = await client.get("/users/me", headers=created["headers"])
    assert me.status_code == 200 and me.json()["username"] == "alice"
    prefs = await client.put(
        "/users/preferences", json={"theme": "dark"}, headers=created["headers"]
    )
    assert prefs.status_code == 200, prefs.text
    events = await stream_chat(client, created["headers"], message="Hello from a script")
    assert names(events)[0] == "start" and names(events)[-1] == "done"
    history = await client.get("/chat/history", headers=alice["headers"])
    assert len(history.json()["items"]) == 1  # the same account, seen from its session


async def test_credential_routes_refuse_keys(
    client: httpx.AsyncClient, alice: dict[str, Any]
) -> None:
    created = await create_key(client, alice)
    sessions = (await client.get("/auth/sessions", headers=alice["headers"])).json()
    password = {"current_password": TEST_PASSWORD, "new_password": "another horse battery"}
    calls = [
        ("POST", "/users/change-password", password),
        ("DELETE", "/users/me", {"password": TEST_PASSWORD}),
        ("POST", KEYS, {"name": "more"}),
        ("GET", KEYS, None),
        ("DELETE", f"{KEYS}/{created['id']}", None),
        ("POST", "/auth/logout", {"all_devices": True}),
        ("GET", "/auth/sessions", None),
        ("DELETE", f"/auth/sessions/{sessions[0]['id']}", None),
        ("POST", "/auth/stream-ticket", None),
    ]
    for method, path, body in calls:
        response = await client.request(method, path, json=body, headers=created["headers"])
        assert_error(response, 403, "api_key_not_allowed")
    # nothing happened: the session, the password and the key all still work
    assert (await client.get("/users/me", headers=alice["headers"])).status_code == 200
    assert (await client.get("/users/me", headers=created["headers"])).status_code == 200
    assert len((await client.get(KEYS, headers=alice["headers"])).json()) == 1


async def test_another_users_key_is_not_found(
    client: httpx.AsyncClient, alice: dict[str, Any], bob: dict[str, Any]
) -> None:
    created = await create_key(client, alice)
    response = await client.delete(f"{KEYS}/{created['id']}", headers=bob["headers"])
    assert_error(response, 404, "not_found")
    assert_error(
        await client.delete(f"{KEYS}/{uuid.uuid4()}", headers=bob["headers"]), 404, "not_found"
    )
    assert (await client.get(KEYS, headers=bob["headers"])).json() == []
    assert (await client.get("/users/me", headers=created["headers"])).status_code == 200


@pytest.mark.parametrize(
    "mangle",
    [
        lambda key: key[:-1] + ("A" if key[-1] != "A" else "B"),  # right prefix, wrong secret
        lambda key: key[:20],
        lambda key: key + "x",
        lambda key: key[:-1] + "!",
        lambda key: "vk-" + "a" * 51,  # well-formed, unknown prefix
        lambda key: "vk-",
    ],
)
async def test_a_wrong_key_is_an_invalid_token(
    client: httpx.AsyncClient, alice: dict[str, Any], mangle: Any
) -> None:
    created = await create_key(client, alice)
    response = await client.get("/users/me", headers=bearer(mangle(created["key"])))
    assert_error(response, 401, "invalid_token")


async def test_an_expired_key_stops(
    client: httpx.AsyncClient, state: AppState, alice: dict[str, Any]
) -> None:
    created = await create_key(client, alice, expires_in_days=1)
    assert (await client.get("/users/me", headers=created["headers"])).status_code == 200
    await set_key(state, created["id"], expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert_error(await client.get("/users/me", headers=created["headers"]), 401, "token_expired")


async def test_revocation_stops_the_next_request_and_is_audited(
    client: httpx.AsyncClient, state: AppState, alice: dict[str, Any]
) -> None:
    created = await create_key(client, alice)
    assert (await client.get("/users/me", headers=created["headers"])).status_code == 200
    gone = await client.delete(f"{KEYS}/{created['id']}", headers=alice["headers"])
    assert gone.status_code == 204
    response = await client.get("/users/me", headers=created["headers"])
    assert_error(response, 401, "token_revoked")
    await state.audit.flush()
    async with state.session_factory() as session:
        rows = (await session.execute(select(AuditEvent).order_by(AuditEvent.at))).scalars()
        events = [(e.action, e.target_id) for e in rows if e.action.startswith("api_key.")]
    key_id = uuid.UUID(created["id"])
    assert events == [("api_key.created", key_id), ("api_key.revoked", key_id)]


async def test_revocation_on_one_instance_stops_the_key_on_the_other(
    two_instances: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = two_instances
    alice = await register_and_login(a, "alice")
    created = await create_key(a, alice)
    assert (await b.get("/users/me", headers=created["headers"])).status_code == 200
    assert (await a.delete(f"{KEYS}/{created['id']}", headers=alice["headers"])).status_code == 204
    assert_error(await b.get("/users/me", headers=created["headers"]), 401, "token_revoked")


async def test_a_sync_stream_on_a_key_ends_when_the_key_is_revoked(
    live: httpx.AsyncClient, alice: dict[str, Any]
) -> None:
    created = await create_key(live, alice)
    async with sync_stream(live, created["headers"]) as frames:
        await still_live(live, alice["headers"], frames)
        gone = await live.delete(f"{KEYS}/{created['id']}", headers=alice["headers"])
        assert gone.status_code == 204
        await ends_revoked(frames)


async def test_deactivating_or_deleting_the_user_stops_its_keys(
    client: httpx.AsyncClient, state: AppState, alice: dict[str, Any], bob: dict[str, Any]
) -> None:
    await make_admin(state, bob["user"]["id"])
    created = await create_key(client, alice)
    path = f"/admin/users/{alice['user']['id']}"
    off = await client.patch(path, json={"is_active": False}, headers=bob["headers"])
    assert off.status_code == 200
    assert_error(await client.get("/users/me", headers=created["headers"]), 401, "token_revoked")
    assert (await client.patch(path, json={"is_active": True}, headers=bob["headers"])).is_success
    assert (await client.get("/users/me", headers=created["headers"])).status_code == 200
    assert (await client.delete(path, headers=bob["headers"])).status_code == 204
    assert_error(await client.get("/users/me", headers=created["headers"]), 401, "invalid_token")


async def test_last_used_at_is_written_at_most_once_a_minute(
    client: httpx.AsyncClient, state: AppState, alice: dict[str, Any]
) -> None:
    created = await create_key(client, alice)
    assert (await key_row(state, created["id"])).last_used_at is None
    assert (await client.get("/users/me", headers=created["headers"])).status_code == 200
    first = (await key_row(state, created["id"])).last_used_at
    assert first is not None and datetime.now(UTC) - first < timedelta(minutes=1)
    listed = (await client.get(KEYS, headers=alice["headers"])).json()
    assert listed[0]["last_used_at"] is not None

    # a second request within the minute writes nothing (the marker stays)
    await set_key(state, created["id"], last_used_at=LONG_AGO)
    assert (await client.get("/users/me", headers=created["headers"])).status_code == 200
    assert (await key_row(state, created["id"])).last_used_at == LONG_AGO

    throttle = state.api_keys.throttle
    real_clock = throttle.clock
    throttle.clock = lambda: real_clock() + throttle.every_s + 1  # a minute later
    try:
        assert (await client.get("/users/me", headers=created["headers"])).status_code == 200
    finally:
        throttle.clock = real_clock
    assert (await key_row(state, created["id"])).last_used_at != LONG_AGO


async def test_keys_never_reach_the_logs(
    client: httpx.AsyncClient, alice: dict[str, Any], log_dir: Path
) -> None:
    created = await create_key(client, alice)
    key = created["key"]
    secret = key[len(created["prefix"]) :]
    headers = {**created["headers"], "X-Request-ID": key}
    assert (await client.get("/users/me", headers=headers)).status_code == 200
    await client.get("/users/me", params={"api_key": key, "q": key}, headers=alice["headers"])
    await client.delete(f"{KEYS}/{key}", headers=alice["headers"])  # the key in the path: 422
    await client.post(KEYS, json={"name": key, "key": key}, headers=alice["headers"])
    await client.put("/users/preferences", json={"note": key}, headers=created["headers"])
    logger.info("a message quoting {}", key)
    logger.error("an error quoting {} and 'key': '{}'", key, key)
    logs = await read_logs(log_dir)
    assert "vk-[REDACTED]" in logs["app.log"] and "vk-[REDACTED]" in logs["error.log"]
    for name, text in logs.items():
        assert secret not in text, f"{name} contains an API key"
