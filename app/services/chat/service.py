"""Chat use cases: start a generation, cancel it, re-attach to it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.errors import BadRequest, NotFound, RateLimited
from app.core.ratelimit import RateLimiter
from app.core.status import MessageStatus
from app.db.writer import TurnWriter
from app.models import Message, User
from app.repositories.conversations import ConversationRepository
from app.schemas.chat import ChatStreamRequest
from app.schemas.events import ErrorEvent
from app.schemas.user import Preferences
from app.services.chat.agent import AgentRun, TurnRequest
from app.services.chat.events import encode_frame
from app.services.chat.history import replay
from app.services.chat.pending import PendingWrites
from app.services.chat.registry import GenerationRegistry
from app.services.chat.snapshot import rebuilt_frames
from app.services.chat.store import TurnIds, TurnStore
from app.services.llm import ChatMessage, ModelConfig, fit_to_context
from app.services.llm.registry import ModelRegistry
from app.services.tools import Tool, Toolbox


class ChatService:
    """Validates a chat request, then hands the turn to a generation task.

    It opens a database session only when it must read (a continued conversation, a
    finished answer): a new conversation's first token needs none, and a stream must never
    hold one open."""

    def __init__(
        self,
        *,
        settings: Settings,
        limiter: RateLimiter,
        session_factory: async_sessionmaker[AsyncSession],
        models: ModelRegistry,
        tools: Toolbox,
        generations: GenerationRegistry,
        writer: TurnWriter,
        pending: PendingWrites,
    ) -> None:
        self.settings = settings
        self.limiter = limiter
        self.session_factory = session_factory
        self.models = models
        self.tools = tools
        self.generations = generations
        self.writer = writer
        self.pending = pending

    async def start(
        self, *, user: User, preferences: dict[str, Any] | None, body: ChatStreamRequest
    ) -> uuid.UUID:
        """Start a generation and return its assistant message id (errors are raised first)."""
        settings, generations = self.settings, self.generations
        await self.limiter.hit(settings.rate_limit_chat, "chat", str(user.id))
        prefs = Preferences.model_validate(preferences or {})
        model = self._resolve_model(requested=body.model, preferred=prefs.default_model)
        history: list[ChatMessage] = []
        conversation_id = body.conversation_id
        make_title = conversation_id is None
        if conversation_id is not None:
            async with self.session_factory() as session:
                conversations = ConversationRepository(session)
                conversation = await conversations.get_for_user(
                    user_id=user.id, conversation_id=conversation_id
                )
                if conversation is None:
                    raise NotFound("Conversation not found")
                make_title = not conversation.title
                history = replay(await conversations.messages(conversation_id=conversation_id))
        if await generations.running_for(user.id) >= settings.max_concurrent_generations:
            raise RateLimited(
                5, f"At most {settings.max_concurrent_generations} answers may run at once"
            )
        system_prompt = body.system_prompt or prefs.system_prompt
        messages = [ChatMessage(role="system", content=system_prompt)] if system_prompt else []
        messages += [*history, ChatMessage(role="user", content=body.message)]
        messages = fit_to_context(
            messages,
            context_window=model.context_window,
            reserve_output=body.max_tokens or model.max_output_tokens,
        )
        ids = TurnIds(
            user_id=user.id,
            conversation_id=conversation_id or uuid.uuid4(),
            user_message_id=uuid.uuid4(),
            message_id=uuid.uuid4(),
        )
        gen = generations.create(message_id=ids.message_id, user_id=user.id)
        run = AgentRun(
            request=TurnRequest(
                ids=ids,
                new_conversation=body.conversation_id is None,
                text=body.message,
                model=model,
                fallbacks=[m for f in model.fallbacks if (m := self.models.get(f))],
                messages=messages,
                tools=self._tools(model=model, prefs=prefs, requested=body.tools),
                temperature=body.temperature if body.temperature is not None else model.temperature,
                max_tokens=body.max_tokens,
                make_title=make_title,
            ),
            gen=gen,
            generations=generations,
            models=self.models,
            tools=self.tools,
            store=TurnStore(writer=self.writer, pending=self.pending),
            max_tool_rounds=settings.max_tool_rounds,
            max_duration_s=settings.max_generation_seconds,
        )
        gen.task = asyncio.create_task(run.run(), name=f"generation-{ids.message_id}")
        return ids.message_id

    def _resolve_model(self, *, requested: str | None, preferred: str | None) -> ModelConfig:
        models = self.models
        if requested is not None:
            model = models.get(requested)
            if model is None or not models.is_available(requested):
                raise BadRequest(f"Model '{requested}' is not available", code="model_unavailable")
            return model
        chosen = models.get(preferred) if preferred else None
        if chosen is not None and models.is_available(chosen.id):
            return chosen
        default = models.get(models.default_id)
        if default is None or not models.is_available(default.id):
            raise BadRequest("No model is available", code="model_unavailable")
        return default

    def _tools(
        self, *, model: ModelConfig, prefs: Preferences, requested: bool | list[str]
    ) -> list[Tool]:
        if requested is False or not model.supports_tools:
            return []
        servers: set[str] | None = (
            set(prefs.enabled_mcp_servers) if prefs.enabled_mcp_servers is not None else None
        )
        if isinstance(requested, list):
            servers = set(requested) if servers is None else servers & set(requested)
        return self.tools.available(servers=servers)

    def follow(self, *, message_id: uuid.UUID) -> AsyncIterator[bytes]:
        """The events of a generation this service just started, from the first."""
        return self.generations.follow(message_id=message_id, last_event_id=0)

    async def cancel(self, *, user: User, message_id: uuid.UUID) -> None:
        """Stop a running generation of this user (from any device)."""
        if not await self.generations.cancel(message_id=message_id, user_id=user.id):
            raise NotFound("No running answer with this id")

    async def attach(
        self, *, user: User, message_id: uuid.UUID, last_event_id: int
    ) -> AsyncIterator[bytes]:
        """The events after `last_event_id`, live; when they cannot be replayed exactly, a
        snapshot of the message first (a saved answer whose log is gone: snapshot + outcome)."""
        generations = self.generations
        owned = await generations.owner_known(message_id=message_id, user_id=user.id)
        if owned is False:
            raise NotFound("No answer with this id")
        rebuild = partial(self._rebuilt, user_id=user.id, message_id=message_id)
        if owned is None:
            message = await self._saved(user_id=user.id, message_id=message_id)
            if message is None:
                raise NotFound("No answer with this id")
            # a generation that has just started on another worker may be mirrored by now
            if message.status != MessageStatus.STREAMING or not await generations.owner_known(
                message_id=message_id, user_id=user.id
            ):
                return _once(rebuilt_frames(message, last_event_id))
        frames: AsyncIterator[bytes] = generations.follow(
            message_id=message_id, last_event_id=last_event_id, rebuild=rebuild
        )
        return frames

    async def _saved(self, *, user_id: uuid.UUID, message_id: uuid.UUID) -> Message | None:
        """The user's assistant message, if it exists."""
        async with self.session_factory() as session:
            message = await ConversationRepository(session).get_message_for_user(
                user_id=user_id, message_id=message_id
            )
        return message if message is not None and message.role == "assistant" else None

    async def _rebuilt(
        self, last_event_id: int, *, user_id: uuid.UUID, message_id: uuid.UUID
    ) -> AsyncIterator[bytes]:
        """The saved answer as a snapshot and its outcome (its live log was lost)."""
        message = await self._saved(user_id=user_id, message_id=message_id)
        if message is None:  # deleted meanwhile
            gone: ErrorEvent = {"code": "not_found", "message": "No such answer."}
            yield encode_frame(last_event_id + 1, "error", gone)
            return
        yield rebuilt_frames(message, last_event_id)


async def _once(frames: bytes) -> AsyncIterator[bytes]:
    """A stream of one chunk."""
    yield frames
