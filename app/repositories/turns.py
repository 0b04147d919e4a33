"""A chat turn's writes as synchronous Core statements, run on `DirectDb` in one hop.

The same rules as `ChangeRepository` (see app/repositories/changes.py): the user's change
counter is always the first row a write locks, and every row written gets its own number.
Statements are built once with bind parameters; the columns to set come with each call.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, case, insert, select, update

from app.models import Conversation, Message, User

users = cast(Table, User.__table__)
conversations = cast(Table, Conversation.__table__)
messages = cast(Table, Message.__table__)

_ALLOCATE = (
    update(users)
    .where(users.c.id == bindparam("b_user_id"))
    # keep `updated_at` (its onupdate is for profile edits, not for data changes)
    .values(change_seq=users.c.change_seq + bindparam("b_count"), updated_at=users.c.updated_at)
    .returning(users.c.change_seq)
)
_ALLOCATE_FOR_MESSAGE = (
    update(users)
    .where(
        users.c.id
        == select(messages.c.user_id)
        .where(messages.c.id == bindparam("b_message_id"))
        .scalar_subquery()
    )
    .values(change_seq=users.c.change_seq + 1, updated_at=users.c.updated_at)
    .returning(users.c.change_seq)
)
_INSERT_CONVERSATION = insert(conversations)
_INSERT_MESSAGES = insert(messages)
_UPDATE_MESSAGE = update(messages).where(messages.c.id == bindparam("b_id"))
# the highest SSE event id only grows, whatever order late writes land in
_NEWER_EVENT_ID = case(
    (messages.c.last_event_id < bindparam("b_event_id"), bindparam("b_event_id")),
    else_=messages.c.last_event_id,
)
_UPDATE_MESSAGE_EVENTS = _UPDATE_MESSAGE.values(last_event_id=_NEWER_EVENT_ID)
_UPDATE_STREAMING = update(messages).where(
    messages.c.id == bindparam("b_id"), messages.c.status == "streaming"
)
_UPDATE_STREAMING_EVENTS = _UPDATE_STREAMING.values(last_event_id=_NEWER_EVENT_ID)
_MESSAGE_EXISTS = select(messages.c.id).where(messages.c.id == bindparam("b_id"))
_IN_PROGRESS = (
    select(messages.c.id, messages.c.user_id, messages.c.created_at)
    .where(messages.c.status == "streaming", messages.c.role == "assistant")
    .order_by(messages.c.created_at)
)
_IN_PROGRESS_AMONG = _IN_PROGRESS.where(messages.c.id.in_(bindparam("b_ids", expanding=True)))
_UPDATE_CONVERSATION = update(conversations).where(conversations.c.id == bindparam("b_id"))
_COUNT_MESSAGES = _UPDATE_CONVERSATION.values(
    message_count=conversations.c.message_count + bindparam("b_added")
)


class TurnRepository:
    """Change numbers, conversation and message rows of chat turns; no commits."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def allocate(self, *, user_id: uuid.UUID, count: int) -> int:
        """Reserve `count` consecutive change numbers; the first (0 if there is no such user).

        Must be the first write of the transaction: it locks the user row until commit."""
        last = self.conn.execute(_ALLOCATE, {"b_user_id": user_id, "b_count": count}).scalar()
        return 0 if last is None else int(last) - count + 1

    def allocate_for_message(self, *, message_id: uuid.UUID) -> int:
        """One change number for the owner of a message (0 if it is gone), in one statement."""
        seq = self.conn.execute(_ALLOCATE_FOR_MESSAGE, {"b_message_id": message_id}).scalar()
        return 0 if seq is None else int(seq)

    def insert_conversation(self, *, values: dict[str, Any]) -> None:
        """Insert one conversation row."""
        self.conn.execute(_INSERT_CONVERSATION, values)

    def insert_messages(self, *, rows: list[dict[str, Any]]) -> None:
        """Insert message rows in one statement."""
        self.conn.execute(_INSERT_MESSAGES, rows)

    def update_message(
        self, *, message_id: uuid.UUID, values: dict[str, Any], last_event_id: int = 0
    ) -> None:
        """Write fields of one message (`last_event_id` only if higher than the stored one)."""
        self._update(_UPDATE_MESSAGE, _UPDATE_MESSAGE_EVENTS, message_id, values, last_event_id)

    def update_streaming_message(
        self, *, message_id: uuid.UUID, values: dict[str, Any], last_event_id: int = 0
    ) -> bool:
        """Write fields of one message if it is still `streaming`; whether it was."""
        return bool(
            self._update(
                _UPDATE_STREAMING, _UPDATE_STREAMING_EVENTS, message_id, values, last_event_id
            )
        )

    def _update(
        self,
        plain: Any,
        with_event_id: Any,
        message_id: uuid.UUID,
        values: dict[str, Any],
        last_event_id: int,
    ) -> int:
        """Run one of the message updates; the rows it changed."""
        params = {**values, "b_id": message_id}
        if last_event_id:
            result = self.conn.execute(with_event_id, {**params, "b_event_id": last_event_id})
        else:
            result = self.conn.execute(plain, params)
        return int(result.rowcount)

    def message_exists(self, *, message_id: uuid.UUID) -> bool:
        """Whether a message row exists."""
        return self.conn.execute(_MESSAGE_EXISTS, {"b_id": message_id}).first() is not None

    def in_progress(
        self, *, among: set[uuid.UUID] | None = None
    ) -> list[tuple[uuid.UUID, uuid.UUID, Any]]:
        """`(message_id, user_id, created_at)` of the assistant messages still `streaming`
        (all of them, or those `among` the given ids)."""
        if among is None:
            rows = self.conn.execute(_IN_PROGRESS)
        else:
            rows = self.conn.execute(_IN_PROGRESS_AMONG, {"b_ids": list(among)})
        return [(row[0], row[1], row[2]) for row in rows]

    def update_conversation(
        self, *, conversation_id: uuid.UUID, values: dict[str, Any], added_messages: int = 0
    ) -> None:
        """Write fields of one conversation (and count `added_messages` more messages)."""
        if added_messages:
            params = {**values, "b_id": conversation_id, "b_added": added_messages}
            self.conn.execute(_COUNT_MESSAGES, params)
        else:
            self.conn.execute(_UPDATE_CONVERSATION, {**values, "b_id": conversation_id})
