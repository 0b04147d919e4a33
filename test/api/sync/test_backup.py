"""Backup and restore: exact round trip, idempotent re-import, id remapping, limits, errors."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from app.api import deps
from app.repositories.backups import BackupRepository
from app.state import AppState
from test.api.chat.stubs import StubTools
from test.support.auth import TEST_PASSWORD, register_and_login
from test.support.factories import chat_turns
from test.support.sse import stream_chat


async def _fill(client: httpx.AsyncClient, h: dict) -> list[str]:
    """An account with tool calls, several turns, a pinned, an archived conversation, prefs."""
    tool = await stream_chat(client, h, message='/tool stub__add {"a": 2, "b": 3}')
    assert any(e.name == "tool_result" for e in tool)
    first = tool[0].data["conversation_id"]
    await stream_chat(client, h, message="and then?", conversation_id=first)
    second = await chat_turns(client, h, "pin me")
    await client.patch(
        f"/chat/history/{second}", json={"pinned": True, "title": "Pinned"}, headers=h
    )
    third = await chat_turns(client, h, "archive me")
    await client.patch(f"/chat/history/{third}", json={"archived": True}, headers=h)
    await client.put(
        "/users/preferences",
        json={"theme": "dark", "language": "fr", "extra": {"font": 14}, "default_model": "x"},
        headers=h,
    )
    return [first, second, third]


async def _export(client: httpx.AsyncClient, h: dict) -> dict[str, Any]:
    response = await client.get("/sync/export", headers=h)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return dict(response.json())


async def _import(client: httpx.AsyncClient, h: dict, doc: Any) -> httpx.Response:
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return await client.post(
        "/sync/import", content=body, headers={**h, "Content-Type": "application/json"}
    )


async def _conversations(client: httpx.AsyncClient, h: dict, ids: list[str]) -> list[Any]:
    return [(await client.get(f"/chat/history/{cid}", headers=h)).json() for cid in ids]


async def test_round_trip_through_a_deleted_account(
    client: httpx.AsyncClient, alice: dict, stub_tools: StubTools
) -> None:
    h = alice["headers"]
    ids = await _fill(client, h)
    before = await _conversations(client, h, ids)
    assert before[0]["messages"][1]["tool_calls"][0]["result"] == "5"
    doc = await _export(client, h)
    assert (doc["format"], doc["version"]) == ("vektor-backup", 3)
    assert doc["user"]["username"] == "alice" and doc["preferences"]["theme"] == "dark"
    assert len(doc["conversations"]) == 3

    gone = await client.request("DELETE", "/users/me", json={"password": TEST_PASSWORD}, headers=h)
    assert gone.status_code == 204
    again = await register_and_login(client, "alice")
    h2 = again["headers"]
    result = await _import(client, h2, doc)
    assert result.status_code == 200, result.text
    assert result.json() == {"conversations_imported": 3, "messages_imported": 8, "skipped": 0}

    assert await _conversations(client, h2, ids) == before  # ids, titles, messages, tool calls
    history = (await client.get("/chat/history", headers=h2)).json()["items"]
    assert [c["id"] for c in history] == [
        c["id"] for c in sorted(before, key=lambda c: c["updated_at"], reverse=True)
    ]
    prefs = (await client.get("/users/preferences", headers=h2)).json()
    assert prefs == doc["preferences"]
    assert (await _export(client, h2))["conversations"] == doc["conversations"]

    twice = await _import(client, h2, doc)
    assert twice.json() == {"conversations_imported": 0, "messages_imported": 0, "skipped": 11}


async def test_import_into_another_account_remaps_ids_once(
    client: httpx.AsyncClient, alice: dict, bob: dict, stub_tools: StubTools
) -> None:
    ids = await _fill(client, alice["headers"])
    alice_before = await _conversations(client, alice["headers"], ids)
    doc = await _export(client, alice["headers"])
    first = await _import(client, bob["headers"], doc)
    assert first.json() == {"conversations_imported": 3, "messages_imported": 8, "skipped": 0}
    second = await _import(client, bob["headers"], doc)
    assert second.json() == {"conversations_imported": 0, "messages_imported": 0, "skipped": 11}

    assert await _conversations(client, alice["headers"], ids) == alice_before
    bobs = (await _export(client, bob["headers"]))["conversations"]
    assert not {c["id"] for c in bobs} & set(ids)
    # ids are remapped, links too (parent ids and the active leaf point at the new ids)
    strip = lambda convs: [  # noqa: E731
        {
            **c,
            "id": None,
            "current_message_id": [m["id"] for m in c["messages"]].index(c["current_message_id"]),
            "messages": [
                {
                    **m,
                    "id": None,
                    "parent_id": [x["id"] for x in c["messages"]].index(m["parent_id"])
                    if m["parent_id"]
                    else None,
                }
                for m in c["messages"]
            ],
        }
        for c in convs
    ]
    assert sorted(map(json.dumps, strip(bobs))) == sorted(
        map(json.dumps, strip(doc["conversations"]))
    )
    # bob had no saved preferences, so alice's came along; a second import keeps his own
    assert (await client.get("/users/preferences", headers=bob["headers"])).json()[
        "theme"
    ] == "dark"


async def test_merges_missing_messages_into_an_existing_conversation(
    client: httpx.AsyncClient, alice: dict
) -> None:
    h = alice["headers"]
    cid = await chat_turns(client, h, "one")
    doc = await _export(client, h)
    extra = copy.deepcopy(doc["conversations"][0]["messages"][0])
    extra.update(id="6f1d6c1e-3b7b-4d0c-9a57-1c2d3e4f5a6b", content="restored later")
    extra["created_at"] = "2099-01-01T00:00:00+00:00"
    doc["conversations"][0]["messages"].append(extra)
    result = await _import(client, h, doc)
    assert result.json() == {"conversations_imported": 0, "messages_imported": 1, "skipped": 3}
    # a copy of the first message: a second root, beside the active branch
    params = {"all": "true"}
    conversation = (await client.get(f"/chat/history/{cid}", params=params, headers=h)).json()
    assert conversation["message_count"] == 3
    assert conversation["messages"][-1]["content"] == "restored later"


async def test_invalid_documents_name_the_bad_field(client: httpx.AsyncClient, alice: dict) -> None:
    h = alice["headers"]
    await stream_chat(client, h, message="x")
    doc = await _export(client, h)
    cases: list[tuple[Any, str]] = [
        (b"{not json", "Not valid JSON"),
        ({**doc, "format": "other"}, "format"),
        ({**doc, "version": 4}, "version"),
        ({k: v for k, v in doc.items() if k != "conversations"}, "conversations"),
        ({**doc, "surprise": 1}, "surprise"),
    ]
    bad_role = copy.deepcopy(doc)
    bad_role["conversations"][0]["messages"][1]["role"] = "robot"
    cases.append((bad_role, "conversations[0].messages[1].role"))
    naive = copy.deepcopy(doc)
    naive["conversations"][0]["messages"][0]["created_at"] = "2024-01-01T00:00:00"
    cases.append((naive, "conversations[0].messages[0].created_at"))
    duplicate = copy.deepcopy(doc)
    duplicate["conversations"].append(duplicate["conversations"][0])
    cases.append((duplicate, "conversations[1].id"))
    for body, path in cases:
        response = await _import(client, h, body)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["code"] == "invalid_backup"
        assert response.json()["detail"].startswith(path), response.json()["detail"]
    assert (await client.post("/sync/import", content=b"{}")).status_code == 401
    assert (await client.get("/sync/export")).status_code == 401


@pytest.fixture
def small_imports(app: Any, state: AppState) -> Iterator[None]:
    """MAX_IMPORT_BYTES=1024 for this test."""
    small = state.settings.model_copy(update={"max_import_bytes": 1024})
    app.dependency_overrides[deps.get_settings_dep] = lambda: small
    yield
    del app.dependency_overrides[deps.get_settings_dep]


async def test_size_limit_is_checked_while_reading(
    client: httpx.AsyncClient, alice: dict, small_imports: None
) -> None:
    h = alice["headers"]
    big = json.dumps({"format": "vektor-backup", "pad": "x" * 4000}).encode()
    declared = await _import(client, h, big)
    assert declared.status_code == 413 and declared.json()["code"] == "payload_too_large"

    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 512

    streamed = await client.post("/sync/import", content=chunked(), headers=h)
    assert streamed.status_code == 413 and streamed.json()["code"] == "payload_too_large"


async def test_import_is_all_or_nothing(
    client: httpx.AsyncClient, alice: dict, bob: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    await stream_chat(client, alice["headers"], message="a")
    await stream_chat(client, alice["headers"], message="b")
    doc = await _export(client, alice["headers"])
    before = (await client.get("/sync/changes", headers=bob["headers"])).json()

    async def fail(self: BackupRepository, *, rows: list[dict[str, Any]]) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(BackupRepository, "insert_messages", fail)
    with pytest.raises(RuntimeError):  # the in-process client re-raises the 500's cause
        await _import(client, bob["headers"], doc)
    monkeypatch.undo()
    assert (await client.get("/chat/history", headers=bob["headers"])).json()["items"] == []
    after = (await client.get("/sync/changes", headers=bob["headers"])).json()
    assert after["cursor"] == before["cursor"]  # not even a change number was spent
