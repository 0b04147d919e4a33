"""A chat turn's rows: built from its writes (app/repositories/turn_writes.py), and the
statements that write them. Applying a write again is harmless:
- `begin` inserts the user message and the `streaming` placeholder (skipped on a retry if
  the placeholder exists: the first try may have committed before its answer was lost);
- `checkpoint` saves the text so far, only while the message is still `streaming`;
- `finish` writes the final message whatever its status: a finished answer always wins over
  an `interrupted` mark some other process put on it meanwhile.
`last_event_id` only ever grows, whatever order retries land in.

`TurnUnit` is what the write machinery (app/db/writer.py, app/db/direct.py) runs: on a
`Connection` in the caller's transaction, or, for a first try of `begin` on PostgreSQL, as
one data-modifying statement (`single`). The same rules as `ChangeRepository` hold (see
app/repositories/changes.py, whose change-number statements these reuse): the user's change
counter is always the first row a write locks, and every row written gets its own number.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, case, exists, insert, select, update

from app.core.status import IN_PROGRESS, MessageStatus
from app.db.direct import SingleStatement
from app.models import Conversation, Message
from app.repositories.changes import ALLOCATE, ALLOCATE_FOR_MESSAGE, allocated, record_changes
from app.repositories.turn_begin import (
    ONE_MICROSECOND,
    conversation_row,
    message_rows,
    numbers,
    single_begin,
    touch_row,
)
from app.repositories.turn_writes import (
    BeginWrite,
    CheckpointWrite,
    FinishWrite,
    ResumeWrite,
    TurnWrite,
    preview,
    usage_columns,
)

conversations = cast(Table, Conversation.__table__)
messages = cast(Table, Message.__table__)


# --- statements, built once with bind parameters --------------------------------------------

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
    messages.c.id == bindparam("b_id"), messages.c.status.in_(IN_PROGRESS)
)
_UPDATE_STREAMING_EVENTS = _UPDATE_STREAMING.values(last_event_id=_NEWER_EVENT_ID)
_MESSAGE_EXISTS = select(messages.c.id).where(messages.c.id == bindparam("b_id"))
_AWAITING_CALLS = select(messages.c.tool_calls).where(
    messages.c.id == bindparam("b_id"), messages.c.status == MessageStatus.AWAITING_APPROVAL
)
_IN_PROGRESS = (
    select(messages.c.id, messages.c.user_id, messages.c.created_at)
    .where(messages.c.status.in_(IN_PROGRESS), messages.c.role == "assistant")
    .order_by(messages.c.created_at)
)
_IN_PROGRESS_AMONG = _IN_PROGRESS.where(messages.c.id.in_(bindparam("b_ids", expanding=True)))
_UPDATE_CONVERSATION = update(conversations).where(conversations.c.id == bindparam("b_id"))
_COUNT_MESSAGES = _UPDATE_CONVERSATION.values(
    message_count=conversations.c.message_count + bindparam("b_added")
)
_CHILD = select(messages.c.id).where(messages.c.parent_id == bindparam("b_message_id"))
_RESUME_CONVERSATION = _UPDATE_CONVERSATION.values(
    updated_at=bindparam("b_now"),
    change_seq=bindparam("b_seq"),
    current_message_id=case(
        (exists(_CHILD), conversations.c.current_message_id),
        else_=bindparam("b_message_id"),
    ),
)


class TurnRepository:
    """Change numbers, conversation and message rows of chat turns; no commits."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def allocate(self, *, user_id: uuid.UUID, count: int, note: bool = True) -> int:
        """Reserve `count` consecutive change numbers; the first (0 if there is no such user).
        Noted for sync push unless `note` is False (`noted` then, if a row got them).

        Must be the first write of the transaction: it locks the user row until commit."""
        row = self.conn.execute(ALLOCATE, {"b_user_id": user_id, "b_count": count}).first()
        return allocated(self.conn.info, row, count=count, note=note)

    def allocate_for_message(self, *, message_id: uuid.UUID) -> tuple[uuid.UUID | None, int]:
        """`(owner, one change number)` for the owner of a message (`(None, 0)` if it is
        gone), in one statement; not noted (see `noted`)."""
        row = self.conn.execute(ALLOCATE_FOR_MESSAGE, {"b_message_id": message_id}).first()
        if row is None:
            return None, 0
        return row[0], allocated(self.conn.info, row, count=1, note=False)

    def noted(self, *, user_id: uuid.UUID | None, seq: int) -> None:
        """Note change number `seq` of `user_id` for sync push (after the commit)."""
        if user_id is not None and seq:
            record_changes(self.conn.info, user_id=user_id, last=seq)

    def begin(self, w: BeginWrite, *, retry: bool) -> None:
        """The user message and the `streaming` placeholder (and the conversation)."""
        if retry and self.message_exists(message_id=w.message_id):
            return
        # sync feed: the conversation gets `seq`, the messages the next numbers
        seq = self.allocate(user_id=w.user_id, count=numbers(w))
        if w.new_conversation:
            row = conversation_row(w=w, preview_text=preview(w.text), seq=seq)
            self.conn.execute(_INSERT_CONVERSATION, row)
        rows = message_rows(
            w=w, assistant_at=w.now + ONE_MICROSECOND, seq=seq, user_message=w.user_message
        )
        self.conn.execute(_INSERT_MESSAGES, rows)
        if not w.new_conversation:
            self.update_conversation(
                conversation_id=w.conversation_id,
                added_messages=len(rows),
                values=touch_row(w=w, preview_text=preview(w.text), seq=seq),
            )

    def resume(self, w: ResumeWrite) -> None:
        """A finished answer `streaming` again (`continue`); it becomes the active leaf when
        nothing follows it (an answer with replies below keeps the active branch as is)."""
        seq = self.allocate(user_id=w.user_id, count=2)
        self.update_message(
            message_id=w.message_id,
            values={
                "status": MessageStatus.STREAMING,
                "finish_reason": None,
                "error_code": None,
                "updated_at": w.now,
                "change_seq": seq,
            },
        )
        self.conn.execute(
            _RESUME_CONVERSATION,
            {"b_id": w.conversation_id, "b_message_id": w.message_id, "b_now": w.now}
            | {"b_seq": seq + 1},
        )

    def checkpoint(self, w: CheckpointWrite) -> None:
        """The text so far, only while the message is still `streaming`."""
        owner, seq = self.allocate_for_message(message_id=w.message_id)
        values: dict[str, Any] = {"content": w.content, "reasoning": w.reasoning, "change_seq": seq}
        if w.status is not None:  # entering or leaving a pause for tool approval
            values.update(status=w.status, tool_calls=w.tool_calls or None)
        if self.update_streaming_message(
            message_id=w.message_id,
            values=values,
            last_event_id=w.last_event_id,
        ):
            self.noted(user_id=owner, seq=seq)

    def finish(self, w: FinishWrite) -> None:
        """The final assistant message (whatever its status), and the conversation."""
        seq = self.allocate(user_id=w.user_id, count=2)
        # a continued answer keeps the images it already had unless new ones came
        kept = {"attachments": w.attachments} if w.attachments is not None else {}
        self.update_message(
            message_id=w.message_id,
            values={
                **kept,
                "content": w.content,
                "reasoning": w.reasoning,
                "status": w.status,
                "model": w.model,
                "usage": w.usage,
                **usage_columns(w.usage),
                "tool_calls": w.tool_calls or None,
                "error_code": w.error_code,
                "finish_reason": w.finish_reason,
                "updated_at": w.now,
                "change_seq": seq,
            },
            last_event_id=w.last_event_id,
        )
        conversation: dict[str, Any] = {"updated_at": w.now, "change_seq": seq + 1}
        if w.content:
            conversation["last_message_preview"] = preview(w.content)
        if w.title:
            conversation["title"] = w.title
        self.update_conversation(conversation_id=w.conversation_id, values=conversation)

    def mark_interrupted(
        self, *, user_id: uuid.UUID, message_id: uuid.UUID, now: datetime, not_run: str = ""
    ) -> None:
        """End a `streaming` (or `awaiting_approval`) message whose generation died with it:
        `error`/`interrupted`, the text of its last checkpoint kept (nothing if it finished
        meanwhile); a call that still awaited approval becomes an `error` with `not_run`."""
        seq = self.allocate(user_id=user_id, count=1, note=False)
        values: dict[str, Any] = {
            "status": "error",
            "error_code": "interrupted",
            "finish_reason": "error",
            "updated_at": now,
            "change_seq": seq,
        }
        calls = self.conn.execute(_AWAITING_CALLS, {"b_id": message_id}).scalar()
        if calls:
            values["tool_calls"] = [
                {**{k: v for k, v in c.items() if k != "expires_at"}, "status": "error"}
                | {"result": not_run}
                if c.get("status") == "awaiting_approval"
                else c
                for c in calls
            ]
        if self.update_streaming_message(message_id=message_id, values=values):
            self.noted(user_id=user_id, seq=seq)

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


@dataclass(frozen=True, slots=True)
class TurnUnit:
    """One turn write as a unit of work for app/db: call it on a `Connection` (inside the
    caller's transaction); `single()` is its one-statement form, when it has one.

    `retry`: the write may have committed before (its first try's answer was lost)."""

    write: TurnWrite
    retry: bool = False

    def __call__(self, conn: Connection) -> None:
        repo = TurnRepository(conn)
        w = self.write
        if isinstance(w, BeginWrite):
            repo.begin(w, retry=self.retry)
        elif isinstance(w, CheckpointWrite):
            repo.checkpoint(w)
        elif isinstance(w, ResumeWrite):
            repo.resume(w)
        else:
            repo.finish(w)

    def single(self) -> SingleStatement | None:
        """A first try of `begin` as one statement (its change numbers noted after it ran)."""
        w = self.write
        if self.retry or not isinstance(w, BeginWrite):
            return None
        statement, params = single_begin(w)
        return SingleStatement(statement=statement, params=params, noted=_noted_allocation)


def _noted_allocation(info: dict[str, Any], row: Mapping[Any, Any] | None) -> None:
    if row is not None:
        record_changes(info, user_id=row["id"], last=int(row["change_seq"]))


@dataclass(frozen=True, slots=True)
class InterruptUnit:
    """Mark one answer `interrupted` (see `TurnRepository.mark_interrupted`)."""

    user_id: uuid.UUID
    message_id: uuid.UUID
    now: datetime
    not_run: str = ""  # the result of a call that still awaited approval

    def __call__(self, conn: Connection) -> None:
        TurnRepository(conn).mark_interrupted(
            user_id=self.user_id, message_id=self.message_id, now=self.now, not_run=self.not_run
        )
