"""Tree edits every device follows: switch the active branch, delete a subtree.

Both take the user's change-number lock (app/repositories/changes.py) before they read the
tree they change, so a turn, a regenerate or another device's edit of the same user cannot
slip a message in between the walk and the write.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict, NotFound
from app.core.status import IN_PROGRESS
from app.db.base import utcnow
from app.repositories.changes import ChangeRepository
from app.repositories.conversations import ConversationRepository
from app.repositories.message_tree import MessageTreeRepository
from app.repositories.turn_writes import preview
from app.schemas.chat import ConversationRead
from app.services.chat.history import branch_read
from app.services.chat.registry import GenerationRegistry


class TreeEditService:
    """Branch switches and subtree deletes of one user; each ends with one commit."""

    def __init__(self, *, session: AsyncSession, generations: GenerationRegistry) -> None:
        self.session = session
        self.generations = generations
        self.conversations = ConversationRepository(session)
        self.tree = MessageTreeRepository(session)
        self.changes = ChangeRepository(session)

    async def switch_branch(
        self, *, user_id: uuid.UUID, conversation_id: uuid.UUID, message_id: uuid.UUID
    ) -> ConversationRead:
        """Make the branch through `message_id` the active one (its newest descendant becomes
        the leaf) and return it, root first."""
        # lock first: the active leaf read below must be the one this write replaces
        seq = await self.changes.allocate(user_id=user_id)
        conversation = await self.conversations.get_for_user(
            user_id=user_id, conversation_id=conversation_id
        )
        message = await self.conversations.get_message_for_user(
            user_id=user_id, message_id=message_id
        )
        if conversation is None or message is None or message.conversation_id != conversation.id:
            raise NotFound("Message not found in this conversation")  # rolled back: no change
        leaf = await self.tree.newest_leaf(conversation_id=conversation.id, message_id=message_id)
        if leaf is None:
            raise NotFound("Message not found in this conversation")
        if leaf == conversation.current_message_id:
            await self.session.rollback()  # nothing changes: no change number, no push
            conversation = await self.conversations.get_for_user(
                user_id=user_id, conversation_id=conversation_id
            )
            if conversation is None:
                raise NotFound("Message not found in this conversation")
        else:
            # a view change, not new activity: `updated_at` (the history order) stays
            conversation.current_message_id = leaf
            conversation.change_seq = seq
            await self.session.commit()
        return await branch_read(self.tree, self.conversations, conversation, leaf)

    async def delete_subtree(self, *, user_id: uuid.UUID, message_id: uuid.UUID) -> None:
        """Delete a message and all its descendants, with a tombstone for each; the active
        leaf moves to the newest message left below the deleted one's parent."""
        message = await self.conversations.get_message_for_user(
            user_id=user_id, message_id=message_id
        )
        if message is None:
            raise NotFound("Message not found")
        conversation_id, parent_id = message.conversation_id, message.parent_id
        seq = await self.changes.allocate(user_id=user_id)  # first lock taken
        conversation = await self.conversations.get_for_user(
            user_id=user_id, conversation_id=conversation_id
        )
        doomed = await self.tree.subtree(conversation_id=conversation_id, message_id=message_id)
        if conversation is None or not doomed:  # deleted on another device meanwhile
            raise NotFound("Message not found")
        await self._refuse_if_generating(doomed)
        ids = [mid for mid, _ in doomed]
        first = await self.changes.allocate(user_id=user_id, count=len(ids))
        await self.tree.delete_subtree(conversation_id=conversation_id, message_id=message_id)
        await self.changes.add_tombstones(
            user_id=user_id, entity_type="message", entity_ids=ids, first_seq=first
        )
        current = conversation.current_message_id
        if current is None or current in set(ids):
            current = await self.tree.newest_leaf(
                conversation_id=conversation_id, message_id=parent_id
            )
        path = (
            await self.tree.path_to(conversation_id=conversation_id, leaf_id=current)
            if current is not None
            else []
        )
        texts = [m.content for m in path if m.content]
        conversation.current_message_id = current
        conversation.message_count = await self.tree.count(conversation_id=conversation_id)
        conversation.last_message_preview = preview(texts[-1]) if texts else None
        conversation.updated_at = utcnow()
        conversation.change_seq = seq
        await self.session.commit()

    async def _refuse_if_generating(self, doomed: list[tuple[uuid.UUID, str]]) -> None:
        """409 `generation_running` when a message of the subtree is still being generated
        (a `streaming` row whose generation still runs on some worker). When Redis cannot
        be asked, a `streaming` row counts as running: better refuse than cut an answer."""
        streaming = [mid for mid, status in doomed if status in IN_PROGRESS]
        if not streaming:
            return
        states = await self.generations.states(streaming)
        if states is None or any(state == "running" for state in states.values()):
            raise Conflict(
                "An answer in this branch is still being generated; cancel it first",
                code="generation_running",
            )
