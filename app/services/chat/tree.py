"""Where in a conversation's tree a turn goes, and what the model sees there.

Every kind of turn is placed here and then started by the one machinery in
app/services/chat/service.py: a new message (below the active leaf or any `parent_id`: an
older one forks), a regenerated answer (a new assistant sibling), an edited question (a new
user sibling, then its answer) and a continued answer (the same message, text appended).
The model sees only the path root → parent (one recursive query,
app/repositories/message_tree.py), with the tool rounds on it replayed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import BadRequest, Conflict, NotFound
from app.core.status import IN_PROGRESS, MessageStatus
from app.models import Conversation, Message
from app.repositories.conversations import ConversationRepository
from app.repositories.message_tree import MessageTreeRepository
from app.services.chat.history import replay
from app.services.chat.turn import Resumed
from app.services.llm import ChatMessage

# how an answer must have ended for `continue` to append to it
CONTINUABLE = frozenset({"length", "cancelled", "error"})
_CONTINUABLE_STATUS = frozenset({MessageStatus.CANCELLED, MessageStatus.ERROR})


@dataclass
class Placement:
    """A turn's place in the tree and the path the model sees (`history`)."""

    conversation_id: uuid.UUID | None = None  # None: a new conversation
    parent_id: uuid.UUID | None = None  # the new user message's parent
    history: list[ChatMessage] = field(default_factory=list)
    make_title: bool = True
    text: str | None = None  # the new user message (None: no new user message)
    user_message_id: uuid.UUID | None = None  # the existing user message answered
    message_id: uuid.UUID | None = None  # the existing answer continued
    resumed: Resumed | None = None
    last_event_id: int = 0  # the continued answer's highest event id so far
    model: str | None = None  # the continued answer's model
    attachments: list[dict[str, Any]] | None = None  # the new user message's files


class TreeTurns:
    """Places turns in the tree of one user's conversations (reads only, no commit)."""

    def __init__(self, session: AsyncSession) -> None:
        self.conversations = ConversationRepository(session)
        self.tree = MessageTreeRepository(session)

    async def below(
        self,
        *,
        user_id: uuid.UUID,
        conversation_id: uuid.UUID | None,
        parent_id: uuid.UUID | None,
        text: str,
    ) -> Placement:
        """A new message below `parent_id` (default: the conversation's active leaf)."""
        if parent_id is not None:
            parent = await self._message(user_id=user_id, message_id=parent_id)
            if conversation_id is not None and parent.conversation_id != conversation_id:
                raise NotFound("Message not found")
            conversation_id = parent.conversation_id
        assert conversation_id is not None
        conversation = await self._conversation(user_id=user_id, conversation_id=conversation_id)
        if parent_id is None:
            parent_id = conversation.current_message_id or await self.tree.newest_leaf(
                conversation_id=conversation_id, message_id=None
            )
        return Placement(
            conversation_id=conversation_id,
            parent_id=parent_id,
            history=await self._path(conversation_id, parent_id),
            make_title=not conversation.title,
            text=text,
        )

    async def regenerate(self, *, user_id: uuid.UUID, message_id: uuid.UUID) -> Placement:
        """A new answer beside an assistant message, below the same user message."""
        answer = await self._message(user_id=user_id, message_id=message_id, role="assistant")
        if answer.parent_id is None:
            raise BadRequest("This answer answers no message", code="wrong_message_role")
        question = await self._message(user_id=user_id, message_id=answer.parent_id)
        conversation = await self._conversation(
            user_id=user_id, conversation_id=answer.conversation_id
        )
        return Placement(
            conversation_id=answer.conversation_id,
            history=await self._path(answer.conversation_id, question.id),
            make_title=not conversation.title,
            user_message_id=question.id,
        )

    async def edit(self, *, user_id: uuid.UUID, message_id: uuid.UUID, text: str) -> Placement:
        """A new user message beside `message_id` (same parent), to be answered."""
        question = await self._message(user_id=user_id, message_id=message_id, role="user")
        if await self.tree.has_streaming_child(message_id=question.id):
            raise Conflict("Its answer is still being generated", code="generation_running")
        conversation = await self._conversation(
            user_id=user_id, conversation_id=question.conversation_id
        )
        return Placement(
            conversation_id=question.conversation_id,
            parent_id=question.parent_id,
            history=await self._path(question.conversation_id, question.parent_id),
            make_title=not conversation.title,
            text=text,
            attachments=question.attachments,  # kept unless the edit names others
        )

    async def resume(self, *, user_id: uuid.UUID, message_id: uuid.UUID) -> Placement:
        """More text for an answer that was cut (`length`, `cancelled`, `error`)."""
        answer = await self._message(user_id=user_id, message_id=message_id, role="assistant")
        if answer.status in IN_PROGRESS:
            raise Conflict("This answer is still being generated", code="generation_running")
        if not continuable(answer):
            raise Conflict(
                "Only an answer that ended with length, cancelled or error can be continued",
                code="not_continuable",
            )
        # the path includes the answer itself: its tool rounds, then its text as the last
        # assistant message, which the model continues (an Anthropic prefill; a final
        # assistant message for OpenAI-compatible servers). Anthropic refuses a prefill
        # that ends in whitespace, so the text is sent without it (and saved unchanged).
        history = await self._path(answer.conversation_id, answer.id)
        if history and history[-1].role == "assistant" and not history[-1].tool_calls:
            history[-1] = ChatMessage(role="assistant", content=history[-1].content.rstrip())
        return Placement(
            conversation_id=answer.conversation_id,
            history=history,
            make_title=False,
            user_message_id=answer.parent_id or answer.id,
            message_id=answer.id,
            resumed=Resumed(
                content=answer.content,
                tool_calls=list(answer.tool_calls or []),
                usage=answer.usage,
                reasoning=answer.reasoning,
            ),
            last_event_id=answer.last_event_id,
            model=answer.model,
        )

    async def _path(
        self, conversation_id: uuid.UUID, leaf_id: uuid.UUID | None
    ) -> list[ChatMessage]:
        if leaf_id is None:
            return []
        return replay(await self.tree.path_to(conversation_id=conversation_id, leaf_id=leaf_id))

    async def _message(
        self, *, user_id: uuid.UUID, message_id: uuid.UUID, role: str | None = None
    ) -> Message:
        message = await self.conversations.get_message_for_user(
            user_id=user_id, message_id=message_id
        )
        if message is None:
            raise NotFound("Message not found")
        if role is not None and message.role != role:
            raise BadRequest(f"This route takes a {role} message", code="wrong_message_role")
        return message

    async def _conversation(
        self, *, user_id: uuid.UUID, conversation_id: uuid.UUID
    ) -> Conversation:
        conversation = await self.conversations.get_for_user(
            user_id=user_id, conversation_id=conversation_id
        )
        if conversation is None:
            raise NotFound("Conversation not found")
        return conversation


def continuable(message: Message) -> bool:
    """Whether `continue` may append to this answer (answers saved before finish reasons
    were stored count by their status)."""
    if message.finish_reason is not None:
        return message.finish_reason in CONTINUABLE
    return message.status in _CONTINUABLE_STATUS
