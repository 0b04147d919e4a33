"""`POST /sync/import`: restore a backup into the caller's account, all or nothing.

* The body is counted while it is read; past the limit the upload stops with 413.
* The document is parsed and validated off the event loop; the first bad field is named
  by its path (`conversations[2].messages[0].role`) in a 422.
* Idempotent by ids: a conversation or message that already exists in this account (in the
  same conversation) is skipped. An id that belongs to someone else is replaced by
  `uuid5(namespace, "<user id>:<old id>")`, a new id that is the same every time the same
  document is imported into the same account, so importing twice adds nothing.
* Version 2 restores the message tree exactly (each message after its parent); a version-1
  document (no tree yet) becomes one branch in its order, its last message the active leaf
  (app/services/sync/backup_tree.py). A conversation that already exists keeps its active
  leaf; messages merged into it hang below their parents.
* Version 3 adds attachments and the files themselves (app/services/sync/backup_files.py).
* Preferences are restored only into an account that never saved any.
* Change numbers for the feed are reserved (one per written row) after the ownership
  reads and before the first write, so the user row is the first lock taken (see
  app/repositories/changes.py) and other writers of this user wait only for the inserts.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import InvalidInput, PayloadTooLarge
from app.core.json_input import JsonTooDeep, json_path, loads_bounded
from app.db.base import utcnow
from app.repositories.backups import BackupRepository
from app.repositories.changes import ChangeRepository
from app.schemas.common import find_json_problem
from app.schemas.sync import BackupConversation, BackupDocument, BackupMessage, ImportResult
from app.services.sync.backup_files import placed_attachments
from app.services.sync.backup_tree import as_tree, parents_first, tree_problem

REMAP_NAMESPACE = uuid.UUID("5b0c4f8e-6a47-4c1e-9d0a-2f6f1b8e7a11")
MAX_REMAP_ROUNDS = 4
ONE_MICROSECOND = timedelta(microseconds=1)
MAX_BACKUP_DEPTH = 100  # the format needs 8 levels; tool arguments and preferences the rest


async def read_limited(body: AsyncIterator[bytes], *, limit: int, declared: str | None) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `limit` bytes."""
    too_large = PayloadTooLarge(f"A backup may be at most {limit} bytes")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in body:
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _invalid(detail: str) -> InvalidInput:
    return InvalidInput(detail, code="invalid_backup")


def parse_document(raw: bytes) -> BackupDocument:
    """Parse and validate a backup (CPU-bound: call from a thread).

    Before anything is stored: the depth is bounded before parsing, and every string (keys
    included) must be storable text (no U+0000, no unpaired surrogate); the first problem is
    named by its path."""
    try:
        data = loads_bounded(raw, max_depth=MAX_BACKUP_DEPTH)
    except JsonTooDeep as exc:
        raise _invalid(str(exc)) from exc
    except json.JSONDecodeError as exc:
        raise _invalid(f"Not valid JSON (line {exc.lineno}, column {exc.colno})") from exc
    except UnicodeDecodeError as exc:
        raise _invalid("Not valid UTF-8 JSON") from exc
    except ValueError as exc:  # an integer longer than Python converts (4300 digits)
        raise _invalid("Not valid JSON: a number has too many digits") from exc
    problem = find_json_problem(data, max_depth=MAX_BACKUP_DEPTH)
    if problem is not None:
        path, reason = problem
        raise _invalid(f"{json_path(path)}: {reason}")
    try:
        doc = BackupDocument.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise _invalid(f"{json_path(error['loc'])}: {error['msg']}") from exc
    seen: set[uuid.UUID] = set()
    for i, conversation in enumerate(doc.conversations):
        if conversation.id in seen:
            raise _invalid(f"conversations[{i}].id: duplicate id {conversation.id}")
        seen.add(conversation.id)
        for j, message in enumerate(conversation.messages):
            if message.id in seen:
                raise _invalid(f"conversations[{i}].messages[{j}].id: duplicate id {message.id}")
            seen.add(message.id)
        if doc.version >= 2 and (broken := tree_problem(conversation)) is not None:
            raise _invalid(f"conversations[{i}].{broken.path}: {broken.reason}")
    trees = [as_tree(c, version=doc.version) for c in doc.conversations]
    return doc.model_copy(update={"conversations": trees})


def remapped(*, user_id: uuid.UUID, old: uuid.UUID) -> uuid.UUID:
    """The stable replacement of an id that belongs to another account."""
    return uuid.uuid5(REMAP_NAMESPACE, f"{user_id}:{old}")


@dataclass
class _Plan:
    """Where each document row goes, and which already exist."""

    conv_target: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    conv_exists: set[uuid.UUID] = field(default_factory=set)
    msg_target: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    msg_exists: set[uuid.UUID] = field(default_factory=set)


class BackupImporter:
    """Writes one validated document into one account (the caller commits)."""

    def __init__(self, *, session: AsyncSession) -> None:
        self.backups = BackupRepository(session)
        self.changes = ChangeRepository(session)

    async def run(
        self,
        *,
        user_id: uuid.UUID,
        doc: BackupDocument,
        files: dict[uuid.UUID, uuid.UUID] | None = None,
    ) -> ImportResult:
        """Import what is missing; report what was imported and skipped (`files`: where the
        document's files were restored, for the messages' attachments)."""
        plan = await self._plan(user_id=user_id, doc=doc)
        new_convs = [c for c in doc.conversations if c.id not in plan.conv_exists]
        grown = {
            c.id: n
            for c in doc.conversations
            if c.id in plan.conv_exists
            and (n := sum(m.id not in plan.msg_exists for m in c.messages))
        }
        new_msgs = sum(m.id not in plan.msg_exists for c in doc.conversations for m in c.messages)
        restore_prefs = doc.preferences is not None and not await self.backups.has_preferences(
            user_id=user_id
        )
        writes = len(new_convs) + len(grown) + new_msgs + int(restore_prefs)
        skipped = len(plan.conv_exists) + len(plan.msg_exists)
        result = ImportResult(
            conversations_imported=len(new_convs), messages_imported=new_msgs, skipped=skipped
        )
        if writes == 0:
            return result
        seq = await self.changes.allocate(user_id=user_id, count=writes)
        conv_rows, msg_rows = [], []
        for conversation in doc.conversations:
            target = plan.conv_target[conversation.id]
            if conversation.id in grown:
                await self.backups.add_messages_to(
                    conversation_id=target, added=grown[conversation.id], change_seq=seq
                )
                seq += 1
            elif conversation.id not in plan.conv_exists:
                current = conversation.current_message_id
                leaf = plan.msg_target[current] if current is not None else None
                conv_rows.append(_conversation_row(conversation, target, user_id, seq, leaf))
                seq += 1
            for message in parents_first(_ordered(conversation.messages)):
                if message.id not in plan.msg_exists:
                    parent = plan.msg_target[message.parent_id] if message.parent_id else None
                    ids = _RowIds(plan.msg_target[message.id], target, user_id, parent)
                    msg_rows.append(_message_row(message, ids, seq, files or {}))
                    seq += 1
        await self.backups.insert_conversations(rows=conv_rows)
        await self.backups.insert_messages(rows=msg_rows)
        if restore_prefs and doc.preferences is not None:
            await self.backups.insert_preferences(
                user_id=user_id, data=doc.preferences.model_dump(), change_seq=seq, now=utcnow()
            )
        return result

    async def _plan(self, *, user_id: uuid.UUID, doc: BackupDocument) -> _Plan:
        plan = _Plan()
        pending = [c.id for c in doc.conversations]
        plan.conv_target = {cid: cid for cid in pending}
        for _ in range(MAX_REMAP_ROUNDS):
            owners = await self.backups.conversation_owners(
                ids=[plan.conv_target[c] for c in pending]
            )
            retry = []
            for cid in pending:
                owner = owners.get(plan.conv_target[cid])
                if owner == user_id:
                    plan.conv_exists.add(cid)
                elif owner is not None:
                    plan.conv_target[cid] = remapped(user_id=user_id, old=plan.conv_target[cid])
                    retry.append(cid)
            pending = retry
            if not pending:
                break
        for cid in pending:  # still taken after several rounds: give up on stable ids
            plan.conv_target[cid] = uuid.uuid4()
        home = {m.id: plan.conv_target[c.id] for c in doc.conversations for m in c.messages}
        pending = list(home)
        plan.msg_target = {mid: mid for mid in pending}
        for _ in range(MAX_REMAP_ROUNDS):
            found = await self.backups.message_owners(ids=[plan.msg_target[m] for m in pending])
            retry = []
            for mid in pending:
                where = found.get(plan.msg_target[mid])
                if where == (user_id, home[mid]):
                    plan.msg_exists.add(mid)
                elif where is not None:
                    plan.msg_target[mid] = remapped(user_id=user_id, old=plan.msg_target[mid])
                    retry.append(mid)
            pending = retry
            if not pending:
                break
        for mid in pending:
            plan.msg_target[mid] = uuid.uuid4()
        return plan


def _ordered(messages: list[BackupMessage]) -> list[BackupMessage]:
    """Keep the document's order: messages stored with equal timestamps get 1 µs apart."""
    result: list[BackupMessage] = []
    previous = None
    for message in messages:
        original = message.created_at
        if previous is not None and original >= previous and original <= result[-1].created_at:
            message = message.model_copy(
                update={"created_at": result[-1].created_at + ONE_MICROSECOND}
            )
        result.append(message)
        previous = original
    return result


def _conversation_row(
    conversation: BackupConversation,
    target: uuid.UUID,
    user_id: uuid.UUID,
    seq: int,
    current: uuid.UUID | None,
) -> dict[str, Any]:
    return {
        "id": target,
        "user_id": user_id,
        "title": conversation.title,
        "model": conversation.model,
        "pinned": conversation.pinned,
        "archived": conversation.archived,
        "message_count": len(conversation.messages),
        "last_message_preview": conversation.last_message_preview,
        "current_message_id": current,
        "created_at": conversation.created_at,
        "updated_at": conversation.updated_at,
        "change_seq": seq,
    }


@dataclass(frozen=True, slots=True)
class _RowIds:
    """Where a message goes: its id, conversation, owner and parent in this account."""

    id: uuid.UUID
    conversation_id: uuid.UUID
    user_id: uuid.UUID
    parent_id: uuid.UUID | None


def _message_row(
    message: BackupMessage, ids: _RowIds, seq: int, files: dict[uuid.UUID, uuid.UUID]
) -> dict[str, Any]:
    return {
        "id": ids.id,
        "conversation_id": ids.conversation_id,
        "user_id": ids.user_id,
        "parent_id": ids.parent_id,
        "reasoning": message.reasoning,
        "finish_reason": message.finish_reason,
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "model": message.model,
        "tool_calls": (
            [call.model_dump(exclude_unset=True) for call in message.tool_calls]
            if message.tool_calls
            else None
        ),
        "tool_call_id": message.tool_call_id,
        "usage": message.usage.model_dump() if message.usage else None,
        "attachments": placed_attachments(message.attachments, files),
        "created_at": message.created_at,
        "updated_at": message.created_at,
        "change_seq": seq,
    }
