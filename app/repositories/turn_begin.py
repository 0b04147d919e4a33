"""The rows a turn's begin writes, built once for both of its forms (values for the
per-statement form in app/repositories/turns.py, SQL expressions for PostgreSQL's one
data-modifying statement here).

A begin inserts the user message (its parent: the message it follows) and the `streaming`
assistant placeholder below it, or only the placeholder below an existing user message (a
regenerated answer); the conversation is inserted or touched, and its active leaf
(`current_message_id`) becomes the new assistant message. Two begins below the same parent
simply make two siblings: nothing here reads the tree, so concurrent turns cannot break it
(the last one to commit is the active leaf).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.sql import ColumnElement

from app.core.status import MessageStatus
from app.models import Conversation, Message
from app.repositories.changes import ALLOCATE
from app.repositories.turn_writes import BeginWrite, preview

ONE_MICROSECOND = timedelta(microseconds=1)

conversations = cast(Table, Conversation.__table__)
messages = cast(Table, Message.__table__)


def numbers(w: BeginWrite) -> int:
    """The change numbers a begin needs: the conversation's, then one per inserted message."""
    return 3 if w.user_message else 2


def conversation_row(*, w: Any, preview_text: Any, seq: Any) -> dict[str, Any]:
    """A new conversation (its two first messages counted)."""
    return {
        "id": w.conversation_id,
        "user_id": w.user_id,
        "model": w.model,
        "pinned": False,
        "archived": False,
        "message_count": 2,
        "last_message_preview": preview_text,
        "created_at": w.now,
        "updated_at": w.now,
        "change_seq": seq,
        "current_message_id": w.message_id,
    }


def message_rows(
    *, w: Any, assistant_at: Any, seq: Any, user_message: bool = True
) -> list[dict[str, Any]]:
    """The user message (unless it exists) and the assistant placeholder below it."""
    common = {"conversation_id": w.conversation_id, "user_id": w.user_id, "updated_at": w.now}
    assistant = {
        **common,
        "id": w.message_id,
        "parent_id": w.user_message_id,
        "role": "assistant",
        "content": "",
        "status": MessageStatus.STREAMING,
        "model": w.model,
        "last_event_id": 0,
        "attachments": None,
        "created_at": assistant_at,
        "change_seq": seq + (2 if user_message else 1),
    }
    if not user_message:
        return [assistant]
    user = {
        **common,
        "id": w.user_message_id,
        "parent_id": w.parent_id,
        "role": "user",
        "content": w.text,
        "status": MessageStatus.COMPLETE,
        "model": None,
        "last_event_id": 0,
        "attachments": w.attachments,
        "created_at": w.now,
        "change_seq": seq + 1,
    }
    return [user, assistant]


def touch_row(*, w: Any, preview_text: Any, seq: Any) -> dict[str, Any]:
    """The fields a begin sets on an existing conversation (its new active leaf included)."""
    return {
        "last_message_preview": preview_text,
        "updated_at": w.now,
        "model": w.model,
        "change_seq": seq,
        "current_message_id": w.message_id,
    }


class _BeginParams:
    """A begin's fields as bind parameters, for the one-statement form."""

    user_id = bindparam("b_user_id", type_=messages.c.user_id.type)
    conversation_id = bindparam("b_conversation_id", type_=messages.c.conversation_id.type)
    user_message_id = bindparam("b_user_message_id", type_=messages.c.id.type)
    message_id = bindparam("b_message_id", type_=messages.c.id.type)
    parent_id = bindparam("b_parent_id", type_=messages.c.parent_id.type)
    model = bindparam("b_model", type_=messages.c.model.type)
    text = bindparam("b_text", type_=messages.c.content.type)
    attachments = bindparam("b_attachments", type_=messages.c.attachments.type)
    now = bindparam("b_now", type_=messages.c.created_at.type)


def _begin_statement(*, new_conversation: bool, user_message: bool) -> Any:
    """A turn's first rows in one data-modifying statement (PostgreSQL): the change numbers
    first (the user row is the first lock), then the conversation and the messages."""
    p = _BeginParams
    allocation = ALLOCATE.cte("allocation")
    # the first of the numbers (the conversation's); the messages get the next ones
    first = 2 if user_message else 1
    seq: ColumnElement[Any] = select(allocation.c.change_seq - first).scalar_subquery()
    preview_text = bindparam("b_preview", type_=conversations.c.last_message_preview.type)
    assistant_at = bindparam("b_assistant_at", type_=messages.c.created_at.type)
    rows = message_rows(w=p, assistant_at=assistant_at, seq=seq, user_message=user_message)
    writes = [insert(messages).values(rows).cte("turn_messages")]
    if new_conversation:
        conversation = conversation_row(w=p, preview_text=preview_text, seq=seq)
        writes.insert(0, insert(conversations).values(conversation).cte("turn_conversation"))
    else:
        touch = (
            update(conversations)
            .where(conversations.c.id == p.conversation_id)
            .values(
                message_count=conversations.c.message_count + len(rows),
                **touch_row(w=p, preview_text=preview_text, seq=seq),
            )
        )
        writes.append(touch.cte("turn_conversation"))
    return select(allocation.c.id, allocation.c.change_seq).add_cte(*writes)


_BEGIN_NEW = _begin_statement(new_conversation=True, user_message=True)
_BEGIN_EXISTING = _begin_statement(new_conversation=False, user_message=True)
_BEGIN_ANSWER = _begin_statement(new_conversation=False, user_message=False)


def single_begin(w: BeginWrite) -> tuple[Any, dict[str, Any]]:
    """The one statement of a begin and its parameters."""
    params = {
        "b_user_id": w.user_id,
        "b_count": numbers(w),
        "b_conversation_id": w.conversation_id,
        "b_user_message_id": w.user_message_id,
        "b_message_id": w.message_id,
        "b_model": w.model,
        "b_now": w.now,
        "b_assistant_at": w.now + ONE_MICROSECOND,
        "b_preview": preview(w.text),
    }
    if not w.user_message:
        return _BEGIN_ANSWER, params
    params |= {"b_parent_id": w.parent_id, "b_text": w.text, "b_attachments": w.attachments}
    return (_BEGIN_NEW if w.new_conversation else _BEGIN_EXISTING), params
