"""A sync client as a device would write it: pull pages, apply them, compare with the server."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Replica:
    """One device's copy of an account, kept only through `/sync/changes`."""

    cursor: str | None = None
    conversations: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    preferences: dict[str, Any] | None = None
    pages: int = 0
    items: int = 0

    def apply(self, page: dict[str, Any]) -> None:
        """Deletions first (a re-created id always comes back with a newer change), then upserts."""
        ids = [c["id"] for c in page["conversations"]] + [m["id"] for m in page["messages"]]
        assert len(ids) == len(set(ids)), "an item appears twice in one page"
        for gone in page["deleted"]:
            if gone["type"] == "conversation":
                self.conversations.pop(gone["id"], None)
                for mid in [
                    k for k, m in self.messages.items() if m["conversation_id"] == gone["id"]
                ]:
                    del self.messages[mid]
            else:
                self.messages.pop(gone["id"], None)
        for conversation in page["conversations"]:
            self.conversations[conversation["id"]] = conversation
        for message in page["messages"]:
            self.messages[message["id"]] = message
        if page["preferences"] is not None:
            self.preferences = page["preferences"]
        self.cursor = page["cursor"]
        self.pages += 1
        self.items += len(ids) + len(page["deleted"]) + (page["preferences"] is not None)

    async def pull(
        self, client: httpx.AsyncClient, headers: dict[str, str], limit: int = 200
    ) -> None:
        """Fetch and apply pages until the server says there is no more."""
        for _ in range(10_000):
            params: dict[str, Any] = {"limit": limit}
            if self.cursor is not None:
                params["since"] = self.cursor
            response = await client.get("/sync/changes", params=params, headers=headers)
            assert response.status_code == 200, response.text
            page = response.json()
            self.apply(page)
            if not page["has_more"]:
                return
        raise AssertionError("the feed never ended")

    def state(self) -> dict[str, Any]:
        """Conversations (with their messages, oldest first) and preferences."""
        convs = {}
        for cid, summary in self.conversations.items():
            messages = [m for m in self.messages.values() if m["conversation_id"] == cid]
            messages.sort(key=lambda m: (m["created_at"], m["id"]))
            siblings: dict[str | None, list[str]] = {}
            for m in messages:  # a device derives them from the parent ids it holds
                siblings.setdefault(m["parent_id"], []).append(m["id"])
            convs[cid] = {
                **summary,
                "messages": [
                    _strip(m) | {"sibling_ids": siblings[m["parent_id"]]} for m in messages
                ],
            }
        orphans = [m for m in self.messages.values() if m["conversation_id"] not in convs]
        assert not orphans, f"messages without a conversation: {orphans[:3]}"
        return {"conversations": convs, "preferences": self.preferences}


def _strip(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k != "conversation_id"}


async def server_state(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    """The same view read from the ordinary API."""
    convs: dict[str, Any] = {}
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/chat/history", params=params, headers=headers)).json()
        for item in page["items"]:
            # every message of the tree, as a device's copy holds them
            full = await client.get(
                f"/chat/history/{item['id']}", params={"all": "true"}, headers=headers
            )
            assert full.status_code == 200
            convs[item["id"]] = full.json()
        cursor = page["next_cursor"]
        if cursor is None:
            break
    prefs = (await client.get("/users/preferences", headers=headers)).json()
    return {"conversations": convs, "preferences": prefs}
