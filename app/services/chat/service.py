"""Chat use cases: start a turn (a new message, regenerate, edit, continue), cancel it,
re-attach to it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from functools import partial
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.errors import BadRequest, NotFound, RateLimited
from app.core.ratelimit import RateLimiter
from app.core.status import MessageStatus
from app.db.writer import TurnWriter
from app.models import Message, User
from app.repositories.conversations import ConversationRepository
from app.schemas.chat import ChatStreamRequest, EditRequest, TurnOptions
from app.schemas.events import ErrorEvent
from app.schemas.user import Preferences
from app.services.chat.agent import AgentRun
from app.services.chat.attachments import (
    AttachmentLoader,
    ToolImageKeeper,
    owned_files,
    refs,
)
from app.services.chat.events import encode_frame
from app.services.chat.pending import PendingWrites
from app.services.chat.registry import GenerationRegistry
from app.services.chat.snapshot import rebuilt_frames
from app.services.chat.store import TurnIds, TurnStore
from app.services.chat.tree import Placement, TreeTurns
from app.services.chat.turn import TurnRequest
from app.services.files import Storage, UploadLimits
from app.services.llm import ChatMessage, ModelConfig, fit_to_context
from app.services.llm.registry import ModelRegistry
from app.services.tools import Tool, Toolbox
from app.services.usage.quota import QuotaGuard, Reservation


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
        storage: Storage | None = None,
        upload_limits: UploadLimits | None = None,
        quota: QuotaGuard | None = None,
    ) -> None:
        self.settings = settings
        self.limiter = limiter
        self.session_factory = session_factory
        self.models = models
        self.tools = tools
        self.generations = generations
        self.writer = writer
        self.pending = pending
        self.attachments = AttachmentLoader(session_factory=session_factory, storage=storage)
        self.keeper = ToolImageKeeper(
            session_factory=session_factory, storage=storage, limits=upload_limits
        )
        self.quota = quota

    async def start(
        self, *, user: User, preferences: dict[str, Any] | None, body: ChatStreamRequest
    ) -> uuid.UUID:
        """Start a generation and return its assistant message id (errors are raised first)."""
        await self.limiter.hit(self.settings.rate_limit_chat, "chat", str(user.id))
        prefs = Preferences.model_validate(preferences or {})
        model = self._resolve_model(requested=body.model, preferred=prefs.default_model)
        place = Placement(text=body.message)
        if body.conversation_id is not None or body.parent_id is not None or body.attachments:
            async with self.session_factory() as session:
                if body.conversation_id is not None or body.parent_id is not None:
                    place = await TreeTurns(session).below(
                        user_id=user.id,
                        conversation_id=body.conversation_id,
                        parent_id=body.parent_id,
                        text=body.message,
                    )
                if body.attachments:
                    place.attachments = await owned_files(
                        session, user_id=user.id, file_ids=body.attachments
                    )
        return await self._launch(
            user=user,
            prefs=prefs,
            model=model,
            place=place,
            options=body,
            system_prompt=body.system_prompt,
        )

    async def regenerate(
        self,
        *,
        user: User,
        preferences: dict[str, Any] | None,
        message_id: uuid.UUID,
        body: TurnOptions,
    ) -> uuid.UUID:
        """A new answer beside an assistant message; its id."""
        return await self._variant(user, preferences, body, message_id, "regenerate")

    async def edit(
        self,
        *,
        user: User,
        preferences: dict[str, Any] | None,
        message_id: uuid.UUID,
        body: EditRequest,
    ) -> uuid.UUID:
        """A new user message beside `message_id`, then its answer; the answer's id."""
        return await self._variant(user, preferences, body, message_id, "edit")

    async def resume(
        self,
        *,
        user: User,
        preferences: dict[str, Any] | None,
        message_id: uuid.UUID,
        body: TurnOptions,
    ) -> uuid.UUID:
        """More text for an answer that was cut (the same message id)."""
        return await self._variant(user, preferences, body, message_id, "resume")

    async def _variant(
        self,
        user: User,
        preferences: dict[str, Any] | None,
        body: TurnOptions,
        message_id: uuid.UUID,
        kind: Literal["regenerate", "edit", "resume"],
    ) -> uuid.UUID:
        """Place a regenerate, edit or continue in the tree, then start it like any turn."""
        await self.limiter.hit(self.settings.rate_limit_chat, "chat", str(user.id))
        prefs = Preferences.model_validate(preferences or {})
        async with self.session_factory() as session:
            turns = TreeTurns(session)
            if kind == "regenerate":
                place = await turns.regenerate(user_id=user.id, message_id=message_id)
            elif kind == "edit":
                assert isinstance(body, EditRequest)
                text = body.content
                place = await turns.edit(user_id=user.id, message_id=message_id, text=text)
                if body.attachments is not None:
                    place.attachments = (
                        await owned_files(session, user_id=user.id, file_ids=body.attachments)
                        or None
                    )
            else:
                place = await turns.resume(user_id=user.id, message_id=message_id)
        # a continued answer keeps its model unless another is asked for (or it is gone)
        kept = place.model if place.model and self.models.is_available(place.model) else None
        model = self._resolve_model(requested=body.model or kept, preferred=prefs.default_model)
        return await self._launch(
            user=user, prefs=prefs, model=model, place=place, options=body, system_prompt=None
        )

    async def _launch(
        self,
        *,
        user: User,
        prefs: Preferences,
        model: ModelConfig,
        place: Placement,
        options: ChatStreamRequest | TurnOptions,
        system_prompt: str | None,
    ) -> uuid.UUID:
        """The one way a turn starts: register its generation and run it as its own task."""
        settings, generations = self.settings, self.generations
        if await generations.running_for(user.id) >= settings.max_concurrent_generations:
            raise RateLimited(
                5, f"At most {settings.max_concurrent_generations} answers may run at once"
            )
        system_prompt = system_prompt or prefs.system_prompt
        messages = [ChatMessage(role="system", content=system_prompt)] if system_prompt else []
        messages += place.history
        if place.text is not None:
            parts = refs(place.attachments)
            messages.append(ChatMessage(role="user", content=place.text, parts=parts))
        reserve = options.max_tokens or model.max_output_tokens
        messages = await self.attachments.load(
            messages, user_id=user.id, model=model, reserve_output=reserve
        )
        messages = fit_to_context(
            messages, context_window=model.context_window, reserve_output=reserve
        )
        quota = self.quota
        reservation = (
            await quota.reserve_for(user=user, model=model, messages=messages) if quota else None
        )
        ids = TurnIds(
            user_id=user.id,
            conversation_id=place.conversation_id or uuid.uuid4(),
            user_message_id=place.user_message_id or uuid.uuid4(),
            message_id=place.message_id or uuid.uuid4(),
        )
        # a continued answer's event ids go on above the ones it already sent
        gen = generations.create(
            message_id=ids.message_id, user_id=user.id, first_event_id=place.last_event_id + 1
        )
        title_text = place.text if place.text is not None else _last_user_text(place.history)
        run = AgentRun(
            request=TurnRequest(
                ids=ids,
                new_conversation=place.conversation_id is None,
                text=title_text,
                model=model,
                fallbacks=[m for f in model.fallbacks if (m := self.models.get(f))],
                messages=messages,
                tools=self._tools(model=model, prefs=prefs, requested=options.tools),
                temperature=(
                    options.temperature if options.temperature is not None else model.temperature
                ),
                max_tokens=options.max_tokens,
                make_title=place.make_title,
                parent_id=place.parent_id,
                user_message=place.text is not None,
                resumed=place.resumed,
                attachments=place.attachments if place.text is not None else None,
            ),
            gen=gen,
            generations=generations,
            models=self.models,
            tools=self.tools,
            store=TurnStore(writer=self.writer, pending=self.pending),
            max_tool_rounds=settings.max_tool_rounds,
            max_duration_s=settings.max_generation_seconds,
            keep_image=self.keeper.for_user(user.id),
        )
        before = place.resumed.usage if place.resumed else None
        gen.task = asyncio.create_task(
            _run(run, quota, reservation, before), name=f"generation-{ids.message_id}"
        )
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
        after = self.generations.started_after(message_id)
        return self.generations.follow(message_id=message_id, last_event_id=after)

    async def cancel(self, *, user: User, message_id: uuid.UUID) -> None:
        """Stop a running generation of this user (from any device)."""
        if not await self.generations.cancel(message_id=message_id, user_id=user.id):
            raise NotFound("No running answer with this id")

    async def decide_tool(
        self,
        *,
        user: User,
        message_id: uuid.UUID,
        call_id: str,
        approve: bool,
        reason: str | None = None,
    ) -> None:
        """Approve or deny a tool call waiting for the user (stub until tool approval lands)."""
        raise NotFound("No tool call waiting for approval with this id")

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


async def _run(
    run: AgentRun,
    quota: QuotaGuard | None,
    reservation: Reservation | None,
    before: dict[str, Any] | None,
) -> None:
    """The generation, then its quota reservation settled with what it used."""
    try:
        await run.run()
    finally:
        if quota is not None:
            quota.settle_later(reservation, run.state.usage(), before=before)


def _last_user_text(history: list[ChatMessage]) -> str:
    """The text of the newest user message on a path (a regenerated answer's question)."""
    return next((m.content for m in reversed(history) if m.role == "user"), "")


async def _once(frames: bytes) -> AsyncIterator[bytes]:
    """A stream of one chunk."""
    yield frames
