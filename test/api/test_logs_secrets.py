"""Secrets never reach the log files, and every request leaves one access line in api.log.

The test runs a list of flows (`FLOWS`); each flow talks to the app and records in a
`Secrets` collector every password and token it used. Add a flow for each new feature
that handles secrets (chat, sync, ...) by appending an `async def` to `FLOWS`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from test.support.auth import bearer
from test.support.logs import read_logs

PASSWORD = "Quokka-Zebra-7731-secret"
NEW_PASSWORD = "Narwhal-Ibis-4409-secret"
WRONG_PASSWORD = "Pangolin-Wrong-5512"
TOO_LONG_PASSWORD = "Ωmega-" + "ü" * 40  # rejected with 422, still a secret


@dataclass
class Secrets:
    """Everything that must never appear in a log file, and request ids to look up."""

    values: set[str] = field(default_factory=set)
    request_ids: dict[str, tuple[str, str, int]] = field(default_factory=dict)

    def tokens(self, pair: dict[str, Any]) -> None:
        """Remember both tokens of a pair, alone and as a bearer header."""
        for key in ("access_token", "refresh_token"):
            token = pair[key]
            self.values |= {token, f"Bearer {token}", token.split(".")[2]}


Flow = Callable[[httpx.AsyncClient, Secrets], Awaitable[None]]


async def auth_flow(client: httpx.AsyncClient, secrets: Secrets) -> None:
    """Register, log in (JSON and form), refresh, change the password, log out."""
    secrets.values |= {PASSWORD, NEW_PASSWORD, WRONG_PASSWORD, TOO_LONG_PASSWORD}
    user = {"email": "logcheck@example.com", "username": "logcheck", "password": PASSWORD}
    assert (await client.post("/auth/register", json=user)).status_code == 201
    too_long = {**user, "username": "logcheck2", "password": TOO_LONG_PASSWORD}
    assert (await client.post("/auth/register", json=too_long)).status_code == 422

    request_id = "logs-secrets-login-1"
    login = await client.post(
        "/auth/login",
        json={"username": "logcheck", "password": PASSWORD},
        headers={"X-Request-ID": request_id},
    )
    assert login.status_code == 200
    secrets.request_ids[request_id] = ("POST", "/auth/login", 200)
    pair = login.json()
    secrets.tokens(pair)

    form = await client.post("/auth/login", data={"username": "logcheck", "password": PASSWORD})
    secrets.tokens(form.json())
    wrong = await client.post(
        "/auth/login", json={"username": "logcheck", "password": WRONG_PASSWORD}
    )
    assert wrong.status_code == 401

    refreshed = await client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 200
    new_pair = refreshed.json()
    secrets.tokens(new_pair)
    # a replayed refresh token is logged as an incident, without the token itself
    replay = await client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert replay.status_code == 401

    again = await client.post("/auth/login", data={"username": "logcheck", "password": PASSWORD})
    session = again.json()
    secrets.tokens(session)
    changed = await client.post(
        "/users/change-password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(session["access_token"]),
    )
    assert changed.status_code == 204
    bad_change = await client.post(
        "/users/change-password",
        json={"current_password": WRONG_PASSWORD, "new_password": PASSWORD},
        headers=bearer(session["access_token"]),
    )
    assert bad_change.status_code == 401
    # a revoked token presented again, and a forged one
    assert (await client.get("/users/me", headers=bearer(form.json()["access_token"]))).is_error
    forged = session["access_token"][:-4] + "AAAA"
    secrets.values.add(forged)
    assert (await client.get("/users/me", headers=bearer(forged))).status_code == 401

    request_id = "logs-secrets-logout-1"
    logout = await client.post(
        "/auth/logout",
        headers={**bearer(session["access_token"]), "X-Request-ID": request_id},
    )
    assert logout.status_code == 204
    secrets.request_ids[request_id] = ("POST", "/auth/logout", 204)
    delete = await client.post(
        "/auth/login", json={"username": "logcheck", "password": NEW_PASSWORD}
    )
    secrets.tokens(delete.json())
    gone = await client.request(
        "DELETE",
        "/users/me",
        json={"password": NEW_PASSWORD},
        headers=bearer(delete.json()["access_token"]),
    )
    assert gone.status_code == 204


async def api_key_flow(client: httpx.AsyncClient, secrets: Secrets) -> None:
    """Create a personal API key and use it in a header, a query string and a body."""
    user = {"email": "keycheck@example.com", "username": "keycheck", "password": PASSWORD}
    assert (await client.post("/auth/register", json=user)).status_code == 201
    login = await client.post("/auth/login", json={"username": "keycheck", "password": PASSWORD})
    secrets.tokens(login.json())
    headers = bearer(login.json()["access_token"])
    created = await client.post("/users/me/api-keys", json={"name": "script"}, headers=headers)
    assert created.status_code == 201
    key = created.json()["key"]
    secrets.values |= {key, key[len(created.json()["prefix"]) :]}
    assert (await client.get("/users/me", headers=bearer(key))).status_code == 200
    await client.get("/users/me", params={"api_key": key}, headers=headers)
    await client.put("/users/preferences", json={"note": key}, headers=bearer(key))
    await client.get(f"/users/me/api-keys/{key}", headers=headers)


FLOWS: list[Flow] = [auth_flow, api_key_flow]


def access_lines(api_log: str) -> dict[str, dict[str, Any]]:
    """Structured api.log lines keyed by request id (only the access lines)."""
    found: dict[str, dict[str, Any]] = {}
    for line in api_log.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "duration_ms" in record and "request_id" in record:
            found[str(record["request_id"])] = record
    return found


async def test_no_secrets_in_logs(client: httpx.AsyncClient, log_dir: Path) -> None:
    secrets = Secrets()
    for flow in FLOWS:
        await flow(client, secrets)
    assert len(secrets.values) > 10

    logs = await read_logs(log_dir)
    assert logs["app.log"], f"nothing was logged to {log_dir}"
    for name, text in logs.items():
        leaked = sorted(s for s in secrets.values if s in text)
        assert not leaked, f"{name} contains secrets: {[s[:12] + '...' for s in leaked]}"

    lines = access_lines(logs["api.log"])
    for request_id, (method, path, status) in secrets.request_ids.items():
        assert request_id in lines, f"no access line for {request_id} in api.log"
        record = lines[request_id]
        assert record["method"] == method
        assert record["path"] == path
        assert record["status"] == status
        assert isinstance(record["duration_ms"], int | float) and record["duration_ms"] >= 0
        assert record["level"] == "INFO"
        assert method in record["msg"] and path in record["msg"]
    # the request id also ties the service's own lines to the request
    logins = [ln for ln in logs["app.log"].splitlines() if "logs-secrets-login-1" in ln]
    assert any('"msg": "login"' in ln for ln in logins), logins
