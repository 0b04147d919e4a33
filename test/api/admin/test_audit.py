"""The audit log: a row for each kind of event, `GET /admin/audit`, failures, retention."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import exc as sa_exc

from app.db.base import new_uuid, utcnow
from app.state import AppState
from test.support.assertions import assert_error
from test.support.auth import TEST_PASSWORD, log_in, register_and_login
from test.support.factories import imported_conversation, message
from test.support.logs import read_logs

UA = {"User-Agent": "audit-test/1.0"}


async def audit(
    client: httpx.AsyncClient, state: AppState, root: dict[str, Any], **params: Any
) -> list[dict[str, Any]]:
    """Every audit event (newest first) once the writer has caught up."""
    await state.audit.flush()
    response = await client.get(
        "/admin/audit", params={"limit": 100, **params}, headers=root["headers"]
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def by_action(events: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    """The events of one action."""
    return [e for e in events if e["action"] == action]


async def test_logins_and_failed_logins_carry_ip_and_user_agent(
    client: httpx.AsyncClient, state: AppState, root: dict[str, Any], alice: dict[str, Any]
) -> None:
    alice_id = alice["user"]["id"]
    await log_in(client, "alice", headers=UA)
    for name in ("alice", "nobody"):
        response = await client.post(
            "/auth/login", json={"username": name, "password": "not the password"}, headers=UA
        )
        assert response.status_code == 401
    events = await audit(client, state, root)
    [registered] = [e for e in by_action(events, "user.registered") if e["target_id"] == alice_id]
    assert registered["details"] == {"pending": False}
    login = by_action(events, "auth.login")[0]  # newest first: the one with the user agent
    assert (login["actor_id"], login["target_id"]) == (alice_id, alice_id)
    assert login["ip"] == "127.0.0.1" and login["user_agent"] == "audit-test/1.0"
    unknown, wrong = by_action(events, "auth.login_failed")
    assert unknown["target_id"] is None and unknown["details"] == {"identifier": "nobody"}
    assert wrong["target_id"] == alice_id and wrong["actor_id"] is None
    assert wrong["user_agent"] == "audit-test/1.0"
    assert set(login) == {
        "id",
        "at",
        "actor_id",
        "action",
        "target_type",
        "target_id",
        "ip",
        "user_agent",
        "details",
    }


async def test_session_revocations_password_change_import_and_deletion(
    client: httpx.AsyncClient, state: AppState, root: dict[str, Any]
) -> None:
    bob = await register_and_login(client, "bob")
    bob_id = bob["user"]["id"]
    second, third, fourth = [await log_in(client, "bob") for _ in range(3)]
    assert (
        await client.delete(f"/auth/sessions/{_sid(state, second)}", headers=bob["headers"])
    ).status_code == 204
    assert (await client.post("/auth/logout", headers=third["headers"])).status_code == 204
    # a spent refresh token presented again
    first = await client.post("/auth/refresh", json={"refresh_token": fourth["refresh_token"]})
    assert first.status_code == 200
    replay = await client.post("/auth/refresh", json={"refresh_token": fourth["refresh_token"]})
    assert_error(replay, 401, "token_reused")
    response = await client.post(
        "/users/change-password",
        json={"current_password": TEST_PASSWORD, "new_password": "another long password"},
        headers=bob["headers"],
    )
    assert response.status_code == 204
    await imported_conversation(client, bob["headers"], message(), message("assistant", "hi"))
    response = await client.post("/auth/logout", json={"all_devices": True}, headers=bob["headers"])
    assert response.status_code == 204
    again = await log_in(client, "bob", "another long password")
    response = await client.request(
        "DELETE", "/users/me", json={"password": "another long password"}, headers=again["headers"]
    )
    assert response.status_code == 204

    events = await audit(client, state, root, actor_id=bob_id)
    actions = [e["action"] for e in reversed(events)]  # oldest first
    assert [a for a in actions if not a.startswith("auth.login")] == [
        "user.registered",
        "auth.session_revoked",
        "auth.logout",
        "auth.refresh_reused",
        "user.password_changed",
        "sync.imported",
        "auth.logout_all",
        "user.deleted",
    ]
    revoked = by_action(events, "auth.session_revoked")[0]
    assert (revoked["target_type"], revoked["target_id"]) == ("session", _sid(state, second))
    imported = by_action(events, "sync.imported")[0]
    assert imported["details"] == {
        "conversations_imported": 1,
        "messages_imported": 2,
        "skipped": 0,
    }
    deleted = by_action(events, "user.deleted")[0]
    assert deleted["details"] == {"before": {"email": "bob@example.com", "username": "bob"}}


def _sid(state: AppState, tokens: dict[str, Any]) -> str:
    return str(state.tokens.decode(tokens["access_token"], expected="access").session_id)


async def test_admin_actions_record_before_and_after(
    client: httpx.AsyncClient, state: AppState, root: dict[str, Any], alice: dict[str, Any]
) -> None:
    alice_id, root_id = alice["user"]["id"], root["user"]["id"]
    path = f"/admin/users/{alice_id}"
    body = {"is_active": False, "quota_cost_per_month": 3.5, "is_admin": False}
    assert (await client.patch(path, json=body, headers=root["headers"])).status_code == 200
    response = await client.post(f"{path}/revoke-sessions", headers=root["headers"])
    assert response.status_code == 204
    assert (await client.delete(path, headers=root["headers"])).status_code == 204

    events = await audit(client, state, root, target_id=alice_id)
    deleted, revoked, updated = events[:3]
    assert updated["action"] == "admin.user_updated" and updated["actor_id"] == root_id
    assert updated["target_type"] == "user"
    # is_admin was already false: only what changed is recorded
    assert updated["details"] == {
        "before": {"is_active": True, "quota_cost_per_month": None},
        "after": {"is_active": False, "quota_cost_per_month": 3.5},
    }
    assert revoked["action"] == "admin.sessions_revoked" and revoked["actor_id"] == root_id
    assert deleted["action"] == "admin.user_deleted"
    assert deleted["details"] == {
        "before": {"email": "alice@example.com", "username": "alice", "is_admin": False}
    }
    # the failed attempt is not an event
    response = await client.patch(
        f"/admin/users/{root_id}", json={"is_admin": False}, headers=root["headers"]
    )
    assert_error(response, 409, "last_admin")
    assert await audit(client, state, root, action="admin.user_updated", target_id=root_id) == []


async def test_the_list_filters_and_pages(
    client: httpx.AsyncClient, state: AppState, root: dict[str, Any]
) -> None:
    for _ in range(3):  # the login rate limit allows 5 a minute per account
        await log_in(client, "root")
    logins = await audit(client, state, root, action="auth.login")
    assert len(logins) == 4 and {e["action"] for e in logins} == {"auth.login"}
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"action": "auth.login", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/admin/audit", params=params, headers=root["headers"])).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [e["id"] for e in logins]
    response = await client.get(
        "/admin/audit", params={"action": "no.such"}, headers=root["headers"]
    )
    assert response.status_code == 422
    response = await client.get("/admin/audit", params={"cursor": "x"}, headers=root["headers"])
    assert_error(response, 400, "invalid_cursor")
    assert await audit(client, state, root, actor_id=str(uuid.uuid4())) == []


async def test_a_failing_audit_write_never_fails_the_login(
    client: httpx.AsyncClient,
    state: AppState,
    root: dict[str, Any],
    log_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(events: list[dict[str, Any]]) -> None:
        raise RuntimeError("audit table on fire")

    await state.audit.flush()  # the fixture's login is written
    monkeypatch.setattr(state.audit, "write", broken)
    tokens = await log_in(client, "root")
    assert (await client.get("/users/me", headers=tokens["headers"])).status_code == 200
    await state.audit.flush()
    monkeypatch.undo()
    errors = (await read_logs(log_dir))["error.log"]
    assert "audit event(s) not saved (RuntimeError: audit table on fire)" in errors
    assert "auth.login" in errors  # the lost event itself, for the operator
    # the writer goes on with the next events
    await log_in(client, "root")
    assert len(await audit(client, state, root, action="auth.login")) == 2


async def test_a_database_outage_delays_audit_events_but_loses_none(
    client: httpx.AsyncClient,
    state: AppState,
    root: dict[str, Any],
    log_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await state.audit.flush()
    write, failures = state.audit.write, []

    async def unavailable_once(events: list[dict[str, Any]]) -> None:
        if not failures:
            failures.append(len(events))
            raise sa_exc.TimeoutError("no connection within the pool timeout")
        await write(events)

    monkeypatch.setattr(state.audit, "write", unavailable_once)
    size = len((await read_logs(log_dir))["error.log"])
    await log_in(client, "root")
    logins = await audit(client, state, root, action="auth.login")
    assert failures == [1] and len(logins) == 2  # the fixture's and this one
    assert "not saved" not in (await read_logs(log_dir))["error.log"][size:]


async def test_prune_drops_events_past_the_retention_period(
    client: httpx.AsyncClient, state: AppState, root: dict[str, Any]
) -> None:
    now = utcnow()
    old, recent = new_uuid(), new_uuid()
    await state.audit.write(
        [
            _event(old, at=now - timedelta(days=state.settings.audit_retention_days + 1)),
            _event(recent, at=now - timedelta(days=state.settings.audit_retention_days - 1)),
        ]
    )
    assert await state.audit.prune(now=now) == 1
    ids = {e["id"] for e in await audit(client, state, root)}
    assert str(recent) in ids and str(old) not in ids
    assert await state.audit.prune(now=now) == 0


def _event(ident: uuid.UUID, **fields: Any) -> dict[str, Any]:
    return {
        "id": ident,
        "actor_id": None,
        "action": "auth.login_failed",
        "target_type": None,
        "target_id": None,
        "ip": "192.0.2.1",
        "user_agent": None,
        "details": None,
        **fields,
    }
