"""`vektor.mcp` / `vektor.store`: the exchange runs as a real chat turn (ChatService), and its
generation's events are read back as provider events for the OpenAI encoder.

The turn is the same as `/chat/stream`'s: the agent loop with the server's tools, limits and
timeouts, the concurrency limit, the quota reservation, persistence and sync. Tool rounds
stay on the server: only the answer's text (and reasoning) reaches the client.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from app.core.sse import decode_frame
from app.models import User
from app.schemas.chat import TurnOptions
from app.schemas.openai_compat import ChatCompletionRequest
from app.schemas.user import Preferences
from app.services.chat.service import ChatService
from app.services.chat.tree import Placement, TreeTurns
from app.services.llm import (
    ChatMessage,
    Finish,
    LLMEvent,
    ModelConfig,
    ProviderError,
    ReasoningDelta,
    TextDelta,
    Usage,
)
from app.services.llm.base import FinishReason
from app.services.openai_compat.messages import InvalidRequest

_FINISH: dict[str, FinishReason] = {"length": "length", "tool_limit": "length"}


@dataclass(slots=True)
class StoredTurn:
    """The started turn: its ids (filled by its `start` event) and its events."""

    message_id: uuid.UUID
    conversation_id: str | None = None


def _split(messages: list[ChatMessage]) -> tuple[str | None, list[ChatMessage], ChatMessage]:
    """The system text, the history before the last message, and that (user) message."""
    last = messages[-1]
    if last.role != "user":
        raise InvalidRequest(
            "With vektor.mcp or vektor.store the last message must be the user's",
            param="messages",
        )
    if any(message.parts for message in messages):
        raise InvalidRequest(
            "Images cannot be stored from /v1: upload them with POST /files and use "
            "/chat/stream, or leave vektor.store and vektor.mcp off",
            param="messages",
        )
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    history = [m for m in messages[:-1] if m.role != "system"]
    return system or None, history, last


async def start_turn(
    chat: ChatService,
    *,
    user: User,
    preferences: dict[str, object] | None,
    model: ModelConfig,
    messages: list[ChatMessage],
    body: ChatCompletionRequest,
) -> StoredTurn:
    """Place the exchange (a new conversation, or below `conversation_id`'s active leaf)
    and start it; the model sees the request's messages, not the stored path."""
    options = body.vektor
    assert options is not None
    system, history, last = _split(messages)
    place = Placement(text=last.content)
    if options.conversation_id is not None:
        async with chat.session_factory() as session:
            place = await TreeTurns(session).below(
                user_id=user.id,
                conversation_id=options.conversation_id,
                parent_id=None,
                text=last.content,
            )
    place.history = history
    # the request says everything the model is told: the app's own system prompt stays out
    prefs = Preferences.model_validate(preferences or {}).model_copy(update={"system_prompt": None})
    turn_options = TurnOptions(
        temperature=body.temperature, max_tokens=body.output_limit, tools=options.mcp
    )
    message_id = await chat.start_placed(
        user=user, prefs=prefs, model=model, place=place, options=turn_options,
        system_prompt=system,
    )  # fmt: skip
    return StoredTurn(message_id=message_id)


async def turn_events(chat: ChatService, turn: StoredTurn) -> AsyncGenerator[LLMEvent, None]:
    """The turn's text, reasoning, usage and finish as provider events (tool rounds and
    the app's own events skipped); a failed turn raises `ProviderError` with its code."""
    async for chunk in chat.follow(message_id=turn.message_id):
        for frame in chunk.split(b"\n\n"):
            if not frame or frame.startswith(b":"):
                continue
            name, data = decode_frame(frame)
            if name == "delta":
                yield TextDelta(data["content"])
            elif name == "reasoning":
                yield ReasoningDelta(data["content"])
            elif name == "start":
                turn.conversation_id = data["conversation_id"]
            elif name == "usage":
                yield Usage(int(data["input_tokens"]), int(data["output_tokens"]))
            elif name == "done":
                yield Finish(_FINISH.get(data["finish_reason"], "stop"))
                return
            elif name == "error":
                raise ProviderError(str(data.get("code") or "error"), str(data.get("message")))
