"""Tokens: refresh rotation and reuse detection, logout, and every way a token is refused."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest

from app.core.config import Settings
from test.support.assertions import assert_error
from test.support.auth import TEST_PASSWORD, bearer


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    """POST /auth/refresh."""
    return await client.post("/auth/refresh", json={"refresh_token": token})


# --- refresh rotation -----------------------------------------------------------------------


async def test_refresh_rotates_and_a_replay_revokes_the_session(
    client: httpx.AsyncClient, alice: dict[str, Any]
) -> None:
    first = await refresh(client, alice["refresh_token"])
    assert first.status_code == 200, first.text
    pair = first.json()
    assert pair["refresh_token"] != alice["refresh_token"]
    assert pair["access_token"] != alice["access_token"]
    assert pair["token_type"] == "bearer"
    assert (await client.get("/users/me", headers=bearer(pair["access_token"]))).status_code == 200

    second = await refresh(client, pair["refresh_token"])  # the newest token keeps rotating
    assert second.status_code == 200
    newest = second.json()

    replay = await refresh(client, alice["refresh_token"])  # a spent token comes back
    assert_error(replay, 401, "token_reused")
    # the whole family is dead: the newest refresh token and every access token of the session
    assert_error(await refresh(client, newest["refresh_token"]), 401, "token_revoked")
    for access in (newest["access_token"], pair["access_token"], alice["access_token"]):
        assert_error(await client.get("/users/me", headers=bearer(access)), 401, "token_revoked")
    # other sessions of the same user are not affected
    other = await client.post("/auth/login", json={"username": "alice", "password": TEST_PASSWORD})
    assert (await client.get("/users/me", headers=bearer(other.json()["access_token"]))).is_success


async def test_concurrent_refresh_of_one_token_succeeds_once(
    client: httpx.AsyncClient, alice: dict[str, Any]
) -> None:
    results = await asyncio.gather(
        refresh(client, alice["refresh_token"]), refresh(client, alice["refresh_token"])
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 401], [r.text for r in results]
    loser = next(r for r in results if r.status_code == 401)
    assert_error(loser, 401, "token_reused")


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c"])
async def test_refresh_rejects_garbage(
    client: httpx.AsyncClient, alice: dict[str, Any], token: str
) -> None:
    response = await refresh(client, token)
    if token:
        assert_error(response, 401, "invalid_token")
    else:
        assert response.status_code == 422


async def test_refresh_needs_a_body(client: httpx.AsyncClient) -> None:
    assert (await client.post("/auth/refresh")).status_code == 422
    assert (await client.post("/auth/refresh", json={"token": "x"})).status_code == 422


# --- logout -----------------------------------------------------------------------------------


async def test_logout_rejects_the_token_at_once(
    client: httpx.AsyncClient, alice: dict[str, Any]
) -> None:
    other = await client.post("/auth/login", json={"username": "alice", "password": TEST_PASSWORD})
    response = await client.post("/auth/logout", headers=alice["headers"])
    assert response.status_code == 204
    assert response.content == b""
    assert_error(await client.get("/users/me", headers=alice["headers"]), 401, "token_revoked")
    assert_error(await refresh(client, alice["refresh_token"]), 401, "token_revoked")
    assert_error(await client.post("/auth/logout", headers=alice["headers"]), 401, "token_revoked")
    # only this device was signed out
    other_headers = bearer(other.json()["access_token"])
    assert (await client.get("/users/me", headers=other_headers)).status_code == 200


async def test_logout_all_devices(
    client: httpx.AsyncClient, alice: dict[str, Any], bob: dict[str, Any]
) -> None:
    other = await client.post("/auth/login", json={"username": "alice", "password": TEST_PASSWORD})
    other_pair = other.json()
    response = await client.post(
        "/auth/logout", json={"all_devices": True}, headers=alice["headers"]
    )
    assert response.status_code == 204
    for access in (alice["access_token"], other_pair["access_token"]):
        assert_error(await client.get("/users/me", headers=bearer(access)), 401, "token_revoked")
    assert_error(await refresh(client, other_pair["refresh_token"]), 401, "token_revoked")
    assert (await client.get("/users/me", headers=bob["headers"])).status_code == 200
    # a fresh login still works
    again = await client.post("/auth/login", json={"username": "alice", "password": TEST_PASSWORD})
    assert again.status_code == 200


async def test_logout_with_all_devices_false_keeps_other_sessions(
    client: httpx.AsyncClient, alice: dict[str, Any]
) -> None:
    other = await client.post("/auth/login", json={"username": "alice", "password": TEST_PASSWORD})
    response = await client.post(
        "/auth/logout", json={"all_devices": False}, headers=alice["headers"]
    )
    assert response.status_code == 204
    assert (await client.get("/users/me", headers=bearer(other.json()["access_token"]))).is_success


async def test_logout_needs_a_token(client: httpx.AsyncClient) -> None:
    assert_error(await client.post("/auth/logout"), 401, "not_authenticated")


# --- the token matrix -----------------------------------------------------------------------


def b64(data: dict[str, Any]) -> str:
    """base64url without padding, as JWS uses."""
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims_of(token: str, settings: Settings) -> dict[str, Any]:
    """The verified claims of a real token."""
    payload: dict[str, Any] = jwt.decode(token, settings.signing_key(), algorithms=["HS256"])
    return payload


Forger = Callable[[dict[str, Any], Settings], str]


def _sign(payload: dict[str, Any], settings: Settings, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, settings.signing_key(), algorithm=algorithm)


def _expired(claims: dict[str, Any], settings: Settings) -> str:
    now = int(time.time())
    return _sign({**claims, "iat": now - 7200, "exp": now - 60}, settings)


def _alg_none(claims: dict[str, Any], _settings: Settings) -> str:
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


def _missing_sid(claims: dict[str, Any], settings: Settings) -> str:
    return _sign({k: v for k, v in claims.items() if k != "sid"}, settings)


def _tampered(claims: dict[str, Any], settings: Settings) -> str:
    header, _payload, signature = _sign(claims, settings).split(".")
    return f"{header}.{b64({**claims, 'is_admin': True})}.{signature}"


FORGERIES: dict[str, tuple[Forger, str]] = {
    "expired": (_expired, "token_expired"),
    "wrong signature": (
        lambda c, _s: jwt.encode(c, "another-key-" + "y" * 40, algorithm="HS256"),
        "invalid_token",
    ),
    "alg none": (_alg_none, "invalid_token"),
    "HS512 with the right key": (lambda c, s: _sign(c, s, "HS512"), "invalid_token"),
    "HS384 with the right key": (lambda c, s: _sign(c, s, "HS384"), "invalid_token"),
    "tampered payload": (_tampered, "invalid_token"),
    "refresh type": (lambda c, s: _sign({**c, "typ": "refresh"}, s), "invalid_token"),
    "no type": (lambda c, s: _sign({k: v for k, v in c.items() if k != "typ"}, s), "invalid_token"),
    "missing session id": (_missing_sid, "invalid_token"),
    "non-uuid subject": (lambda c, s: _sign({**c, "sub": "alice"}, s), "invalid_token"),
    "unknown session": (lambda c, s: _sign({**c, "sid": str(uuid.uuid4())}, s), "token_revoked"),
    "someone else's session": (
        lambda c, s: _sign({**c, "sub": str(uuid.uuid4())}, s),
        "token_revoked",
    ),
}


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("name", list(FORGERIES))
async def test_forged_access_tokens_are_refused(
    client: httpx.AsyncClient, alice: dict[str, Any], settings: Settings, name: str
) -> None:
    forge, code = FORGERIES[name]
    token = forge(claims_of(alice["access_token"], settings), settings)
    assert token != alice["access_token"]
    assert_error(await client.get("/users/me", headers=bearer(token)), 401, code)
    # the genuine token still works, so the refusal is about the forgery
    assert (await client.get("/users/me", headers=alice["headers"])).status_code == 200


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize(
    "name", ["expired", "wrong signature", "alg none", "HS512 with the right key"]
)
async def test_forged_refresh_tokens_are_refused(
    client: httpx.AsyncClient, alice: dict[str, Any], settings: Settings, name: str
) -> None:
    forge, code = FORGERIES[name]
    token = forge(claims_of(alice["refresh_token"], settings), settings)
    assert_error(await refresh(client, token), 401, code)
    assert (await refresh(client, alice["refresh_token"])).status_code == 200


async def test_token_types_are_not_interchangeable(
    client: httpx.AsyncClient, alice: dict[str, Any]
) -> None:
    as_access = await client.get("/users/me", headers=bearer(alice["refresh_token"]))
    assert_error(as_access, 401, "invalid_token")
    assert_error(await refresh(client, alice["access_token"]), 401, "invalid_token")
    # neither misuse spent the real refresh token
    assert (await refresh(client, alice["refresh_token"])).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": ""}, {"Authorization": "Bearer"}, {"Authorization": "Basic YTpi"}],
)
async def test_missing_credentials(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    assert_error(await client.get("/users/me", headers=headers), 401, "not_authenticated")


async def test_garbage_bearer_token(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/users/me", headers=bearer("abc.def")), 401, "invalid_token")


async def test_deleted_users_token_is_refused(
    client: httpx.AsyncClient, alice: dict[str, Any]
) -> None:
    response = await client.request(
        "DELETE", "/users/me", json={"password": TEST_PASSWORD}, headers=alice["headers"]
    )
    assert response.status_code == 204
    assert_error(await client.get("/users/me", headers=alice["headers"]), 401, "token_revoked")
    assert_error(await refresh(client, alice["refresh_token"]), 401, "token_revoked")
