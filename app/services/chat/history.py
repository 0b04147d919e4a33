"""History use cases: list, read, rename/pin/archive, delete; and replay for the model."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import BadRequest, NotFound
from app.core.status import IN_PROGRESS
from app.db.base import utcnow
from app.models import Conversation, Message
from app.repositories.changes import ChangeRepository
from app.repositories.conversations import ConversationRepository
from app.repositories.message_tree import MessageTreeRepository
from app.schemas.chat import ConversationPage, ConversationRead, ConversationUpdate
from app.services.chat.attachments import mark_deleted, refs
from app.services.llm import ChatMessage, ToolCallRequest


def encode_cursor(conversation: Conversation) -> str:
    """An opaque keyset cursor after this conversation."""
    raw = json.dumps([conversation.updated_at.isoformat(), str(conversation.id)])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Parse a cursor from `encode_cursor`; 400 `invalid_cursor` otherwise."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        stamp, ident = json.loads(base64.urlsafe_b64decode(padded.encode()))
        moment = datetime.fromisoformat(stamp)
        # a forged time that leaves the datetime range in UTC must fail here, not in the query
        moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
        return moment, uuid.UUID(ident)
    except (ValueError, TypeError, OverflowError, binascii.Error) as exc:
        raise BadRequest("Invalid cursor; start again without one", code="invalid_cursor") from exc


def replay(messages: list[Message]) -> list[ChatMessage]:
    """Stored messages as the model should see them, tool rounds included."""
    result: list[ChatMessage] = []
    for message in messages:
        if message.role == "user":
            result.append(
                ChatMessage(role="user", content=message.content, parts=refs(message.attachments))
            )
            continue
        if message.role != "assistant" or message.status in IN_PROGRESS:
            continue
        rounds: dict[int, list[dict[str, Any]]] = {}
        for call in message.tool_calls or []:
            rounds.setdefault(int(call.get("round", 0)), []).append(call)
        for _, calls in sorted(rounds.items()):
            result.append(
                ChatMessage(
                    role="assistant",
                    content="",
                    tool_calls=[
                        ToolCallRequest(
                            id=str(c["id"]),
                            name=str(c.get("qualified_name") or c.get("tool")),
                            arguments=dict(c.get("arguments") or {}),
                        )
                        for c in calls
                    ],
                )
            )
            result.extend(
                ChatMessage(
                    role="tool", content=str(c.get("result") or ""), tool_call_id=str(c["id"])
                )
                for c in calls
            )
        if message.content:
            result.append(ChatMessage(role="assistant", content=message.content))
    return result


class HistoryService:
    """Conversation history of one user; every lookup is scoped to the owner."""

    def __init__(self, *, session: AsyncSession) -> None:
        self.session = session
        self.repo = ConversationRepository(session)
        self.tree = MessageTreeRepository(session)
        self.changes = ChangeRepository(session)

    async def list(
        self,
        *,
        user_id: uuid.UUID,
        limit: int,
        cursor: str | None,
        query: str | None,
        archived: bool | None,
    ) -> ConversationPage:
        """A page of conversations, newest activity first."""
        rows = await self.repo.list_page(
            user_id=user_id,
            limit=limit + 1,
            after=decode_cursor(cursor) if cursor else None,
            query=(query or "").strip() or None,
            archived=archived,
        )
        page, more = rows[:limit], len(rows) > limit
        return ConversationPage.model_validate(
            {"items": page, "next_cursor": encode_cursor(page[-1]) if more and page else None},
            from_attributes=True,
        )

    async def get(
        self,
        *,
        user_id: uuid.UUID,
        conversation_id: uuid.UUID,
        leaf: uuid.UUID | None = None,
        everything: bool = False,
    ) -> ConversationRead:
        """One conversation with the messages of its active branch (root → current leaf),
        of the branch through `leaf` (down to its newest descendant), or all of them."""
        conversation = await self._owned(user_id=user_id, conversation_id=conversation_id)
        cid = conversation.id
        if leaf is not None:
            end = await self.tree.newest_leaf(conversation_id=cid, message_id=leaf)
            if end is None:
                raise NotFound("Message not found in this conversation")
        else:
            end = conversation.current_message_id
        if everything or end is None:
            return await branch_read(self.tree, self.repo, conversation, None)
        return await branch_read(self.tree, self.repo, conversation, end)

    async def update(
        self, *, user_id: uuid.UUID, conversation_id: uuid.UUID, data: ConversationUpdate
    ) -> Conversation:
        """Rename, pin or archive."""
        conversation = await self._owned(user_id=user_id, conversation_id=conversation_id)
        seq = await self.changes.allocate(user_id=user_id)  # sync feed; first lock taken
        for key, value in data.model_dump(exclude_unset=True).items():
            if value is not None:
                setattr(conversation, key, value)
        conversation.updated_at = utcnow()
        conversation.change_seq = seq
        await self.session.commit()
        return conversation

    async def delete(self, *, user_id: uuid.UUID, conversation_id: uuid.UUID) -> None:
        """Delete a conversation and its messages, leaving a tombstone for the sync feed."""
        seq = await self.changes.allocate(user_id=user_id)  # first lock taken (see changes.py)
        if not await self.repo.delete_for_user(user_id=user_id, conversation_id=conversation_id):
            raise NotFound("Conversation not found")
        await self.changes.add_tombstone(
            user_id=user_id, entity_type="conversation", entity_id=conversation_id, seq=seq
        )
        await self.session.commit()

    async def _owned(self, *, user_id: uuid.UUID, conversation_id: uuid.UUID) -> Conversation:
        conversation = await self.repo.get_for_user(
            user_id=user_id, conversation_id=conversation_id
        )
        if conversation is None:
            raise NotFound("Conversation not found")
        return conversation


async def branch_read(
    tree: MessageTreeRepository,
    repo: ConversationRepository,
    conversation: Conversation,
    leaf_id: uuid.UUID | None,
) -> ConversationRead:
    """`conversation` with the branch root → `leaf_id` and each message's siblings (every
    message when `leaf_id` is None or gone: a conversation written before the tree is shown
    whole), in one or two queries."""
    path: list[Message] = []
    rows: list[tuple[uuid.UUID, uuid.UUID | None]] = []
    if leaf_id is not None:
        path, rows = await tree.branch(conversation_id=conversation.id, leaf_id=leaf_id)
    messages = path
    if not path:
        messages = await repo.messages(conversation_id=conversation.id)
        rows = [(m.id, m.parent_id) for m in messages]
    siblings = _siblings(rows)
    items = [{**_columns(m), "sibling_ids": siblings.get(m.parent_id, [m.id])} for m in messages]
    await mark_deleted(repo.session, user_id=conversation.user_id, messages=items)
    return ConversationRead.model_validate(
        {**_columns(conversation), "messages": items}, from_attributes=True
    )


def _columns(row: Conversation | Message) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in row.__table__.columns}


def _siblings(
    rows: list[tuple[uuid.UUID, uuid.UUID | None]],
) -> dict[uuid.UUID | None, list[uuid.UUID]]:
    """Message ids by parent, in the order of `rows` (oldest first)."""
    by_parent: dict[uuid.UUID | None, list[uuid.UUID]] = {}
    for message_id, parent_id in rows:
        by_parent.setdefault(parent_id, []).append(message_id)
    return by_parent
