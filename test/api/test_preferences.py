"""`/users/preferences`: defaults, partial updates, validation, per-user isolation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from test.support.assertions import assert_error

DEFAULTS = {
    "theme": "system",
    "language": "en",
    "notifications": {"email": True, "push": True},
    "default_model": None,
    "system_prompt": None,
    "enabled_mcp_servers": None,
    "auto_approve_tools": [],
    "extra": {},
}


async def put(client: httpx.AsyncClient, user: dict[str, Any], body: Any) -> httpx.Response:
    """PUT /users/preferences."""
    return await client.put("/users/preferences", json=body, headers=user["headers"])


async def get(client: httpx.AsyncClient, user: dict[str, Any]) -> dict[str, Any]:
    """GET /users/preferences."""
    response = await client.get("/users/preferences", headers=user["headers"])
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_defaults_for_a_new_user(client: httpx.AsyncClient, alice: dict[str, Any]) -> None:
    assert await get(client, alice) == DEFAULTS


async def test_partial_update_replaces_only_the_fields_sent(
    client: httpx.AsyncClient, alice: dict[str, Any]
) -> None:
    first = await put(client, alice, {"theme": "dark", "enabled_mcp_servers": ["time"]})
    assert first.status_code == 200, first.text
    assert first.json() == {**DEFAULTS, "theme": "dark", "enabled_mcp_servers": ["time"]}

    second = await put(client, alice, {"language": "de", "extra": {"font": "large"}})
    expected = {
        **DEFAULTS,
        "theme": "dark",
        "language": "de",
        "enabled_mcp_servers": ["time"],
        "extra": {"font": "large"},
    }
    assert second.json() == expected
    assert await get(client, alice) == expected

    # nested notifications merge switch by switch
    third = await put(client, alice, {"notifications": {"push": False}})
    assert third.json()["notifications"] == {"email": True, "push": False}
    assert third.json()["theme"] == "dark"

    # explicit nulls reset: null servers = all, null model = the configured default
    fourth = await put(
        client, alice, {"enabled_mcp_servers": None, "default_model": None, "extra": {"a": 1}}
    )
    assert fourth.json()["enabled_mcp_servers"] is None
    assert fourth.json()["extra"] == {"a": 1}  # replaced, not merged
    assert fourth.json()["language"] == "de"


async def test_empty_update_changes_nothing(
    client: httpx.AsyncClient, alice: dict[str, Any]
) -> None:
    await put(client, alice, {"theme": "light", "system_prompt": "Be brief."})
    response = await put(client, alice, {})
    assert response.status_code == 200
    assert response.json() == {**DEFAULTS, "theme": "light", "system_prompt": "Be brief."}


@pytest.mark.parametrize(
    "body",
    [
        {"colour": "blue"},
        {"theme": "neon"},
        {"theme": None, "colour": "blue"},
        {"notifications": {"sms": True}},
        {"notifications": {"push": "sometimes"}},
        {"enabled_mcp_servers": "time"},
        {"language": "x"},
        {"extra": ["not", "an", "object"]},
        ["theme", "dark"],
    ],
)
async def test_invalid_updates_are_refused_and_change_nothing(
    client: httpx.AsyncClient, alice: dict[str, Any], body: Any
) -> None:
    await put(client, alice, {"theme": "dark"})
    response = await put(client, alice, body)
    assert response.status_code == 422, response.text
    assert await get(client, alice) == {**DEFAULTS, "theme": "dark"}


async def test_oversized_extra_is_refused(client: httpx.AsyncClient, alice: dict[str, Any]) -> None:
    response = await put(client, alice, {"extra": {"blob": "x" * 20_000}})
    assert_error(response, 422, "validation_error")
    assert await get(client, alice) == DEFAULTS


async def test_preferences_are_per_user(
    client: httpx.AsyncClient, alice: dict[str, Any], bob: dict[str, Any]
) -> None:
    await put(client, alice, {"theme": "dark", "system_prompt": "secret plans"})
    assert await get(client, bob) == DEFAULTS
    await put(client, bob, {"language": "fr"})
    assert (await get(client, alice))["language"] == "en"


async def test_preferences_need_a_token(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/users/preferences"), 401, "not_authenticated")
    response = await client.put("/users/preferences", json={"theme": "dark"})
    assert_error(response, 401, "not_authenticated")


async def test_concurrent_updates_keep_every_field(
    client: httpx.AsyncClient, alice: dict[str, Any]
) -> None:
    """Two devices saving different fields at once (first save and later ones): none is lost."""
    import asyncio

    for round_ in range(2):  # round 0 creates the stored document, round 1 updates it
        theme, language = ("dark", "de") if round_ == 0 else ("light", "fr")
        results = await asyncio.gather(
            put(client, alice, {"theme": theme}), put(client, alice, {"language": language})
        )
        assert [r.status_code for r in results] == [200, 200], [r.text for r in results]
        stored = await get(client, alice)
        assert (stored["theme"], stored["language"]) == (theme, language)
