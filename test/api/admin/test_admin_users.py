"""`/admin/users`: list, read, patch, revoke sessions, delete; `last_admin`; 403 and 404."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.models import User
from app.state import AppState
from test.support.assertions import assert_error
from test.support.auth import TEST_PASSWORD, log_in, make_admin, register_and_login
from test.support.sse import next_event, sse_frames

ADMIN_FIELDS = {
    "id",
    "email",
    "username",
    "full_name",
    "avatar_url",
    "is_admin",
    "created_at",
    "updated_at",
    "is_active",
    "last_login_at",
    "quota_tokens_per_day",
    "quota_cost_per_month",
    "usage_this_month",
}


def routes(user_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every admin route (method, path, JSON body) aimed at `user_id`."""
    return [
        ("GET", "/admin/users", None),
        ("GET", f"/admin/users/{user_id}", None),
        ("PATCH", f"/admin/users/{user_id}", {"quota_tokens_per_day": 5}),
        ("POST", f"/admin/users/{user_id}/revoke-sessions", None),
        ("DELETE", f"/admin/users/{user_id}", None),
        ("GET", "/admin/audit", None),
    ]


async def test_every_admin_route_is_forbidden_to_a_user(
    client: httpx.AsyncClient, root: dict[str, Any], alice: dict[str, Any]
) -> None:
    for method, path, body in routes(root["user"]["id"]):
        response = await client.request(method, path, json=body, headers=alice["headers"])
        assert_error(response, 403, "forbidden")
    # nothing happened to the target
    response = await client.get("/users/me", headers=root["headers"])
    assert response.status_code == 200


async def test_every_admin_route_needs_a_token(client: httpx.AsyncClient) -> None:
    for method, path, body in routes(str(uuid.uuid4())):
        response = await client.request(method, path, json=body)
        assert_error(response, 401, "not_authenticated")


async def test_every_route_on_a_user_is_404_for_a_missing_id(
    client: httpx.AsyncClient, root: dict[str, Any]
) -> None:
    missing = str(uuid.uuid4())
    for method, path, body in routes(missing):
        if missing in path:
            response = await client.request(method, path, json=body, headers=root["headers"])
            assert_error(response, 404, "not_found")


async def test_list_searches_and_pages_every_account(
    client: httpx.AsyncClient, root: dict[str, Any]
) -> None:
    for name in ("carol", "dave", "erin"):
        await client.post(
            "/auth/register",
            json={
                "email": f"{name}@corp.example.org",
                "username": name,
                "password": TEST_PASSWORD,
                "full_name": f"{name.title()} Tester",
            },
        )
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/admin/users", params=params, headers=root["headers"])
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= 2
        seen += [item["username"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ["erin", "dave", "carol", "root"]  # newest first, each once
    item = body["items"][-1]
    assert set(item) == ADMIN_FIELDS
    assert item["usage_this_month"] == {"tokens": 0, "cost_usd": 0.0}

    async def search(q: str) -> list[str]:
        response = await client.get("/admin/users", params={"q": q}, headers=root["headers"])
        assert response.status_code == 200, response.text
        return sorted(item["username"] for item in response.json()["items"])

    assert await search("CORP.example") == ["carol", "dave", "erin"]  # email, any case
    assert await search("dav") == ["dave"]  # username
    assert await search("erin tester") == ["erin"]  # full name
    assert await search("%") == []  # a LIKE wildcard is matched literally
    response = await client.get(
        "/admin/users", params={"cursor": "not-a-cursor"}, headers=root["headers"]
    )
    assert_error(response, 400, "invalid_cursor")


async def test_read_shows_the_admin_fields(
    client: httpx.AsyncClient, state: AppState, root: dict[str, Any], alice: dict[str, Any]
) -> None:
    await state.audit.flush()  # the audit writer notes the login time
    response = await client.get(f"/admin/users/{alice['user']['id']}", headers=root["headers"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == ADMIN_FIELDS
    assert body["username"] == "alice"
    assert body["is_active"] is True and body["is_admin"] is False
    assert body["last_login_at"] is not None  # the fixture logged in
    assert body["quota_tokens_per_day"] is None and body["quota_cost_per_month"] is None


async def test_patch_sets_and_resets_quotas(
    client: httpx.AsyncClient, root: dict[str, Any], alice: dict[str, Any]
) -> None:
    path = f"/admin/users/{alice['user']['id']}"
    response = await client.patch(
        path,
        json={"quota_tokens_per_day": 50_000, "quota_cost_per_month": 12.5},
        headers=root["headers"],
    )
    assert response.status_code == 200, response.text
    assert response.json()["quota_tokens_per_day"] == 50_000
    assert response.json()["quota_cost_per_month"] == 12.5
    response = await client.patch(
        path, json={"quota_tokens_per_day": None}, headers=root["headers"]
    )
    assert response.status_code == 200, response.text
    body = (await client.get(path, headers=root["headers"])).json()
    assert body["quota_tokens_per_day"] is None  # back to the default
    assert body["quota_cost_per_month"] == 12.5  # not sent, kept


@pytest.mark.parametrize(
    "body",
    [
        {"is_admin": None},
        {"is_active": "yes"},
        {"quota_tokens_per_day": -1},
        {"quota_tokens_per_day": True},
        {"quota_tokens_per_day": 2**40},
        {"quota_cost_per_month": -0.01},
        {"quota_cost_per_month": "12"},
        {"email": "x@example.com"},
        {"password_hash": "x"},
    ],
)
async def test_patch_refuses_bad_input(
    client: httpx.AsyncClient, root: dict[str, Any], body: dict[str, Any]
) -> None:
    path = f"/admin/users/{root['user']['id']}"
    response = await client.patch(path, json=body, headers=root["headers"])
    assert response.status_code == 422, response.text


async def test_granting_admin_opens_the_admin_routes(
    client: httpx.AsyncClient, root: dict[str, Any], alice: dict[str, Any]
) -> None:
    path = f"/admin/users/{alice['user']['id']}"
    response = await client.patch(path, json={"is_admin": True}, headers=root["headers"])
    assert response.status_code == 200 and response.json()["is_admin"] is True
    assert (await client.get("/admin/users", headers=alice["headers"])).status_code == 200
    response = await client.patch(path, json={"is_admin": False}, headers=root["headers"])
    assert response.status_code == 200 and response.json()["is_admin"] is False
    assert_error(await client.get("/admin/users", headers=alice["headers"]), 403, "forbidden")


async def test_deactivation_kills_a_live_access_token_at_once(
    client: httpx.AsyncClient, root: dict[str, Any], alice: dict[str, Any]
) -> None:
    other_device = await log_in(client, "alice")
    assert (await client.get("/users/me", headers=alice["headers"])).status_code == 200
    path = f"/admin/users/{alice['user']['id']}"
    response = await client.patch(path, json={"is_active": False}, headers=root["headers"])
    assert response.status_code == 200 and response.json()["is_active"] is False
    for tokens in (alice, other_device):
        assert_error(await client.get("/users/me", headers=tokens["headers"]), 401, "token_revoked")
        response = await client.post(
            "/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert response.status_code == 401
    response = await client.post(
        "/auth/login", json={"username": "alice", "password": TEST_PASSWORD}
    )
    assert_error(response, 403, "account_pending")
    response = await client.patch(path, json={"is_active": True}, headers=root["headers"])
    assert response.status_code == 200
    again = await log_in(client, "alice")
    assert (await client.get("/users/me", headers=again["headers"])).status_code == 200
    # the revoked sessions stay revoked
    assert (await client.get("/users/me", headers=alice["headers"])).status_code == 401


async def test_revoke_sessions_signs_a_user_out_everywhere(
    client: httpx.AsyncClient, root: dict[str, Any], alice: dict[str, Any]
) -> None:
    other_device = await log_in(client, "alice")
    response = await client.post(
        f"/admin/users/{alice['user']['id']}/revoke-sessions", headers=root["headers"]
    )
    assert response.status_code == 204
    for tokens in (alice, other_device):
        assert_error(await client.get("/users/me", headers=tokens["headers"]), 401, "token_revoked")
    # the account itself still works
    assert (await client.get("/users/me", headers=(await log_in(client))["headers"])).is_success
    assert (await client.get("/users/me", headers=root["headers"])).status_code == 200


async def test_delete_removes_the_account_and_its_data(
    client: httpx.AsyncClient, root: dict[str, Any], alice: dict[str, Any]
) -> None:
    path = f"/admin/users/{alice['user']['id']}"
    assert (await client.delete(path, headers=root["headers"])).status_code == 204
    assert_error(await client.get("/users/me", headers=alice["headers"]), 401, "token_revoked")
    assert_error(await client.get(path, headers=root["headers"]), 404, "not_found")
    response = await client.post(
        "/auth/login", json={"username": "alice", "password": TEST_PASSWORD}
    )
    assert_error(response, 401, "invalid_credentials")
    # the name is free again
    assert (await register_and_login(client, "alice"))["user"]["id"] != alice["user"]["id"]


async def test_the_last_admin_cannot_remove_itself(
    client: httpx.AsyncClient, root: dict[str, Any]
) -> None:
    path = f"/admin/users/{root['user']['id']}"
    for body in (
        {"is_admin": False},
        {"is_active": False},
        {"is_admin": False, "is_active": False},
    ):
        response = await client.patch(path, json=body, headers=root["headers"])
        assert_error(response, 409, "last_admin")
    assert_error(await client.delete(path, headers=root["headers"]), 409, "last_admin")
    body = (await client.get(path, headers=root["headers"])).json()
    assert body["is_admin"] is True and body["is_active"] is True
    # a no-op patch of the last admin is fine
    response = await client.patch(path, json={"is_admin": True}, headers=root["headers"])
    assert response.status_code == 200


async def test_an_admin_can_step_down_while_another_remains(
    client: httpx.AsyncClient, state: AppState, root: dict[str, Any], alice: dict[str, Any]
) -> None:
    await make_admin(state, alice["user"]["id"])
    path = f"/admin/users/{root['user']['id']}"
    response = await client.patch(path, json={"is_admin": False}, headers=root["headers"])
    assert response.status_code == 200 and response.json()["is_admin"] is False
    assert_error(await client.get("/admin/users", headers=root["headers"]), 403, "forbidden")
    # now alice is the last one
    alice_path = f"/admin/users/{alice['user']['id']}"
    response = await client.delete(alice_path, headers=alice["headers"])
    assert_error(response, 409, "last_admin")


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    client: httpx.AsyncClient, state: AppState, root: dict[str, Any], alice: dict[str, Any]
) -> None:
    await make_admin(state, alice["user"]["id"])
    for _ in range(3):
        responses = await asyncio.gather(
            client.patch(
                f"/admin/users/{alice['user']['id']}",
                json={"is_admin": False},
                headers=root["headers"],
            ),
            client.patch(
                f"/admin/users/{root['user']['id']}",
                json={"is_admin": False},
                headers=alice["headers"],
            ),
        )
        statuses = sorted(r.status_code for r in responses)
        # one wins; the other finds itself demoted (403) or the last admin (409)
        assert statuses[0] == 200 and statuses[1] in (403, 409), [r.text for r in responses]
        async with state.session_factory() as session:
            admins = (
                await session.execute(select(func.count()).where(User.is_admin.is_(True)))
            ).scalar()
        assert admins == 1
        await make_admin(state, alice["user"]["id"])
        await make_admin(state, root["user"]["id"])


@pytest.mark.parametrize("action", ["deactivate", "revoke-sessions", "delete"])
async def test_an_open_stream_of_the_user_ends_at_once(
    live: httpx.AsyncClient, root: dict[str, Any], alice: dict[str, Any], action: str
) -> None:
    path = f"/admin/users/{alice['user']['id']}"
    async with live.stream("GET", "/sync/stream", headers=alice["headers"]) as response:
        assert response.status_code == 200
        frames = sse_frames(response)
        assert (await next_event(frames))[0] == "changed"
        if action == "deactivate":
            answer = await live.patch(path, json={"is_active": False}, headers=root["headers"])
        elif action == "revoke-sessions":
            answer = await live.post(f"{path}/revoke-sessions", headers=root["headers"])
        else:
            answer = await live.delete(path, headers=root["headers"])
        assert answer.is_success, answer.text
        name, data = await next_event(frames, timeout=1.0)
        assert (name, data.get("code")) == ("error", "token_revoked"), (name, data)
        assert await next_event(frames, timeout=1.0) == ("eof", None)


def _cursor(stamp: str) -> str:
    raw = json.dumps([stamp, str(uuid.uuid4())]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("path", ["/admin/users", "/admin/audit"])
@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"cursor": "a\x00b"}, 422, "validation_error"),
        ({"cursor": _cursor("0001-01-01T00:00:00+05:00")}, 400, "invalid_cursor"),
        ({"cursor": _cursor("9999-12-31T23:59:59-05:00")}, 400, "invalid_cursor"),
        ({"cursor": _cursor("2024-13-01")}, 400, "invalid_cursor"),
        ({"limit": "0"}, 422, "validation_error"),
        ({"limit": "101"}, 422, "validation_error"),
    ],
)
async def test_bad_list_parameters_are_a_clear_4xx(
    client: httpx.AsyncClient,
    root: dict[str, Any],
    path: str,
    params: dict[str, str],
    status: int,
    code: str,
) -> None:
    response = await client.get(path, params=params, headers=root["headers"])
    assert response.status_code == status, response.text
    assert response.json()["code"] == code


@pytest.mark.parametrize(
    "params",
    [{"q": "a\x00b"}, {"q": "x" * 201}],
)
async def test_bad_searches_are_422(
    client: httpx.AsyncClient, root: dict[str, Any], params: dict[str, str]
) -> None:
    response = await client.get("/admin/users", params=params, headers=root["headers"])
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    "params", [{"actor_id": "not-a-uuid"}, {"target_id": "1"}, {"action": "auth.LOGIN"}]
)
async def test_bad_audit_filters_are_422(
    client: httpx.AsyncClient, root: dict[str, Any], params: dict[str, str]
) -> None:
    response = await client.get("/admin/audit", params=params, headers=root["headers"])
    assert response.status_code == 422, response.text
