"""Conversation trees for tests, stored through `POST /sync/import` (backup version 2), and
the version-1 document older exports wrote.

`branchy()` is this tree (oldest first, one second apart), the active leaf `a1b`:

    u1 "question"
    ├── a1  "first answer"      (finish_reason length, with reasoning)
    │   └── u2 "follow-up"
    │       └── a2 "second answer"
    └── a1b "regenerated answer"   <- current
    u1b "edited question"        (a second root: the first question edited)
    └── a1c "answer to the edit"
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

NAMES = ["u1", "a1", "u2", "a2", "a1b", "u1b", "a1c"]
PARENTS = {"u1": None, "a1": "u1", "u2": "a1", "a2": "u2", "a1b": "u1", "u1b": None, "a1c": "u1b"}
TEXTS = {
    "u1": "question",
    "a1": "first answer",
    "u2": "follow-up",
    "a2": "second answer",
    "a1b": "regenerated answer",
    "u1b": "edited question",
    "a1c": "answer to the edit",
}


def _stamp(start: datetime, second: int) -> str:
    return (start + timedelta(seconds=second)).isoformat()


def branchy(current: str = "a1b") -> tuple[dict[str, Any], dict[str, str]]:
    """A version-2 backup holding the tree above, and `{name: message id}`."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=60)
    ids = {name: str(uuid.uuid4()) for name in NAMES}
    messages = []
    for i, name in enumerate(NAMES):
        user = name.startswith("u")
        parent = PARENTS[name]
        messages.append(
            {
                "id": ids[name],
                "role": "user" if user else "assistant",
                "content": TEXTS[name],
                "status": "complete",
                "model": None if user else "vektor-echo",
                "tool_calls": None,
                "tool_call_id": None,
                "usage": None if user else {"input_tokens": 3, "output_tokens": 2},
                "created_at": _stamp(start, i),
                "parent_id": ids[parent] if parent else None,
                "reasoning": "thinking it over" if name == "a1" else None,
                "finish_reason": None if user else ("length" if name == "a1" else "stop"),
            }
        )
    conversation = {
        "id": str(uuid.uuid4()),
        "title": "Branchy",
        "model": "vektor-echo",
        "pinned": False,
        "archived": False,
        "created_at": _stamp(start, 0),
        "updated_at": _stamp(start, len(NAMES)),
        "message_count": len(NAMES),
        "last_message_preview": TEXTS[current],
        "current_message_id": ids[current],
        "messages": messages,
    }
    doc = {
        "format": "vektor-backup",
        "version": 2,
        "exported_at": _stamp(start, len(NAMES) + 1),
        "conversations": [conversation],
    }
    return doc, ids


def version_1(*texts: str) -> dict[str, Any]:
    """A document exactly as version 1 exported it (no tree fields): one conversation,
    alternating user and assistant messages."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=60)
    messages = [
        {
            "id": str(uuid.uuid4()),
            "role": "user" if i % 2 == 0 else "assistant",
            "content": text,
            "status": "complete",
            "model": None if i % 2 == 0 else "vektor-echo",
            "tool_calls": None,
            "tool_call_id": None,
            "usage": None,
            "created_at": _stamp(start, i),
        }
        for i, text in enumerate(texts)
    ]
    return {
        "format": "vektor-backup",
        "version": 1,
        "exported_at": _stamp(start, len(texts)),
        "user": {"username": "old"},
        "preferences": None,
        "conversations": [
            {
                "id": str(uuid.uuid4()),
                "title": "Old",
                "model": "vektor-echo",
                "pinned": False,
                "archived": False,
                "created_at": _stamp(start, 0),
                "updated_at": _stamp(start, len(texts)),
                "message_count": len(texts),
                "last_message_preview": texts[-1] if texts else None,
                "messages": messages,
            }
        ],
    }


async def import_doc(
    client: httpx.AsyncClient, headers: dict[str, str], doc: Any
) -> httpx.Response:
    """`POST /sync/import` with a document (or raw bytes)."""
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return await client.post(
        "/sync/import", content=body, headers={**headers, "Content-Type": "application/json"}
    )


async def stored_tree(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    """The account's conversations as `GET /sync/export` writes them, by id."""
    response = await client.get("/sync/export", headers=headers)
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["version"] == 3
    return {c["id"]: c for c in doc["conversations"]}
