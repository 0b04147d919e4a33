"""Factories for the rows tests need, made through the public API (so a test never depends
on a table layout the app could change under it):

- `new_user` registers and logs in a user (a unique name unless given), optionally an admin;
- `chat_turns` has a conversation with the offline echo model, one real turn per message;
- `imported_conversation` stores a conversation with any messages (roles, statuses, tool
  calls, timestamps) in one `POST /sync/import`: the quick way to a given history.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from test.support.auth import TEST_PASSWORD, make_admin, register_and_login
from test.support.sse import stream_chat


async def new_user(
    client: httpx.AsyncClient,
    name: str | None = None,
    *,
    password: str = TEST_PASSWORD,
    admin_of: Any = None,
) -> dict[str, Any]:
    """A registered, logged-in user (`headers`, `user`, tokens); an admin when `admin_of` is
    the app's state."""
    user = await register_and_login(client, name or f"u{uuid.uuid4().hex[:10]}", password)
    if admin_of is not None:
        await make_admin(admin_of, user["user"]["id"])
    return user


async def chat_turns(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    *messages: str,
    conversation_id: str | None = None,
    **body: Any,
) -> str:
    """Send each message as one finished chat turn (echo model unless `model=` is given) in
    one conversation; returns its id."""
    for text in messages:
        fields = dict(body, message=text)
        if conversation_id is not None:
            fields["conversation_id"] = conversation_id
        events = await stream_chat(client, headers, **fields)
        assert events[-1].name == "done", [e.name for e in events]
        conversation_id = str(events[0].data["conversation_id"])
    assert conversation_id is not None, "no message sent"
    return conversation_id


def message(role: str = "user", content: str = "hello", **fields: Any) -> dict[str, Any]:
    """One message of a backup document (`imported_conversation` gives it id and time)."""
    return {"role": role, "content": content, "status": "complete", **fields}


async def imported_conversation(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    *messages: dict[str, Any],
    **conversation: Any,
) -> dict[str, Any]:
    """Store one conversation holding `messages` (oldest first, a second apart) through
    `POST /sync/import`; returns it as `GET /chat/history/{id}` shows it."""
    start = datetime.now(UTC) - timedelta(seconds=len(messages) + 1)

    def stamp(second: int) -> str:
        return (start + timedelta(seconds=second)).isoformat()

    rows = [{"id": str(uuid.uuid4()), "created_at": stamp(i), **m} for i, m in enumerate(messages)]
    doc = {
        "format": "vektor-backup",
        "version": 1,
        "exported_at": stamp(len(messages)),
        "conversations": [
            {
                "id": str(uuid.uuid4()),
                "title": "Imported",
                "created_at": stamp(0),
                "updated_at": stamp(len(messages)),
                "messages": rows,
                **conversation,
            }
        ],
    }
    response = await client.post(
        "/sync/import",
        content=json.dumps(doc).encode(),
        headers={**headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    cid = doc["conversations"][0]["id"]
    stored = await client.get(f"/chat/history/{cid}", headers=headers)
    assert stored.status_code == 200, stored.text
    return dict(stored.json())
