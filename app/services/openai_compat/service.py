"""`/v1/chat/completions` and `/v1/models`: admission, then one of two answer sources.

* A plain request (no `vektor.mcp`/`vektor.store`) is relayed straight from the provider
  layer: no generation log, no database write per token or per answer start; the usage is
  counted once at the end (quota settlement and a usage row, app/services/usage/api.py).
* With `vektor.mcp` or `vektor.store` the exchange is a real chat turn (stored.py).

Both give provider events; the route encodes them (wire.py) as a stream or a whole object.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from app.core.errors import NotFound, UpstreamError
from app.observability import metrics
from app.schemas.openai_compat import ChatCompletionRequest
from app.services.auth import Principal
from app.services.chat.service import ChatService
from app.services.chat.turn import TurnState
from app.services.llm import (
    ChatMessage,
    Finish,
    LLMEvent,
    ModelConfig,
    ProviderError,
    TextDelta,
    Usage,
    fit_to_context,
    storable_event,
)
from app.services.llm.sampling import Sampling
from app.services.openai_compat.images import load_images
from app.services.openai_compat.messages import InvalidRequest, translate, with_images
from app.services.openai_compat.stored import start_turn, turn_events
from app.services.openai_compat.wire import Completion
from app.services.tools import Tool
from app.services.usage.api import ApiUsageLog
from app.services.usage.quota import Reservation

_TIMEOUTS = frozenset({"upstream_timeout", "generation_timeout"})


class UpstreamTimeout(UpstreamError):
    """The model (or the whole answer) took too long."""

    status_code = 504
    code = "upstream_timeout"


def upstream_failure(exc: ProviderError) -> UpstreamError:
    """A provider failure before anything was sent: 504 for a timeout, else 502."""
    if exc.code in _TIMEOUTS:
        return UpstreamTimeout(exc.message, code=exc.code)
    return UpstreamError(exc.message, code=exc.code)


@dataclass(slots=True)
class Answer:
    """A started answer: its first event (already there: failures before it are HTTP errors),
    the rest, and what the last chunk/object carries."""

    completion: Completion
    first: LLMEvent
    rest: AsyncGenerator[LLMEvent, None]
    include_usage: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class CompletionService:
    """The OpenAI-compatible use cases, on the chat service's models, quotas and limits."""

    def __init__(self, *, chat: ChatService, usage_log: ApiUsageLog | None = None) -> None:
        self.chat = chat
        self.usage_log = usage_log

    def _model(self, model_id: str) -> ModelConfig:
        registry = self.chat.models
        model = registry.get(model_id)
        if model is None or not registry.is_available(model_id):
            raise NotFound(
                f"The model '{model_id}' does not exist or is not available",
                code="model_not_found",
            )
        return model

    async def answer(self, *, principal: Principal, body: ChatCompletionRequest) -> Answer:
        """Admit the request, start its answer and wait for the first event."""
        chat = self.chat
        caller = str(principal.api_key_id or principal.user.id)
        await chat.limiter.hit(chat.settings.rate_limit_api_key, "v1", caller)
        model = self._model(body.model)
        translated = translate(body)
        completion = Completion(model=model.id)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        options = body.vektor
        extra: dict[str, Any] = {}
        if options is not None and (options.mcp or options.store or options.conversation_id):
            if translated.tools:
                raise InvalidRequest(
                    "Client tools cannot be combined with vektor.mcp or vektor.store",
                    param="tools",
                )
            turn = await start_turn(
                chat, user=principal.user, preferences=principal.preferences, model=model,
                messages=translated.messages, body=body,
            )  # fmt: skip
            events = turn_events(chat, turn)
            first = await _first(events)
            extra["vektor"] = {
                "conversation_id": turn.conversation_id,
                "message_id": str(turn.message_id),
            }
        else:
            if translated.tools and not model.supports_tools:
                raise InvalidRequest(
                    f"Model '{model.id}' does not support tools", param="tools",
                    code="tools_not_supported",
                )  # fmt: skip
            images = await load_images(translated.images, model=model)
            messages = with_images(translated, images) if images else translated.messages
            events = await self._direct(
                user_id=principal.user.id, principal=principal, model=model,
                messages=messages, tools=translated.tools, body=body,
            )  # fmt: skip
            first = await _first(events)
        return Answer(completion, first, events, include_usage, extra)

    async def _direct(
        self,
        *,
        user_id: uuid.UUID,
        principal: Principal,
        model: ModelConfig,
        messages: list[ChatMessage],
        tools: list[Tool],
        body: ChatCompletionRequest,
    ) -> AsyncGenerator[LLMEvent, None]:
        """Fit the prompt, reserve quota, then the provider's events (counted at the end)."""
        reserve = body.output_limit or model.max_output_tokens
        messages = fit_to_context(
            messages, context_window=model.context_window, reserve_output=reserve
        )
        quota = self.chat.quota
        reservation = (
            await quota.reserve_for(user=principal.user, model=model, messages=messages)
            if quota
            else None
        )
        temperature = body.temperature if body.temperature is not None else model.temperature
        return self._relay(
            user_id=user_id, api_key_id=principal.api_key_id, model=model, messages=messages,
            tools=tools, temperature=temperature, max_tokens=body.output_limit,
            reservation=reservation, sampling=sampling_of(body),
        )  # fmt: skip

    async def _relay(
        self,
        *,
        user_id: uuid.UUID,
        api_key_id: uuid.UUID | None,
        model: ModelConfig,
        messages: list[ChatMessage],
        tools: list[Tool],
        temperature: float | None,
        max_tokens: int | None,
        reservation: Reservation | None,
        sampling: Sampling | None,
    ) -> AsyncGenerator[LLMEvent, None]:
        """The provider's events as they come; tokens, usage and quota counted once."""
        state = TurnState(model_id=model.id)
        started = time.monotonic()
        produced = False
        stream = self.chat.models.provider_for(model).stream(
            model=model, messages=messages, tools=tools, temperature=temperature,
            max_tokens=max_tokens, sampling=sampling,
        )  # fmt: skip
        try:
            async for event in stream:
                if not produced:
                    produced = True
                    metrics.observe_llm_first_token(model.id, time.monotonic() - started)
                kind = type(event)
                if kind is TextDelta:
                    state.token_count += 1
                elif kind is Usage:
                    state.add_usage(event, model)  # type: ignore[arg-type]
                yield storable_event(event)
            metrics.observe_llm(model.id, time.monotonic() - started)
        except ProviderError as exc:
            metrics.observe_llm(model.id, time.monotonic() - started, error=exc.code)
            raise
        finally:
            metrics.add_tokens(state.token_count, model.id)
            usage = state.usage()
            if self.chat.quota is not None:
                self.chat.quota.settle_later(reservation, usage)
            if self.usage_log is not None and usage is not None:
                self.usage_log.record(
                    user_id=user_id, api_key_id=api_key_id, model_id=model.id, usage=usage
                )


def sampling_of(body: ChatCompletionRequest) -> Sampling | None:
    """`top_p`, `stop`, `seed` and `response_format` for the provider (None: none given)."""
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    if body.top_p is None and not stop and body.seed is None and body.response_format is None:
        return None
    return Sampling(
        top_p=body.top_p, stop=stop, seed=body.seed, response_format=body.response_format
    )


async def _first(events: AsyncGenerator[LLMEvent, None]) -> LLMEvent:
    """The first event; a failure before it is an HTTP error (502/504)."""
    try:
        return await anext(events)
    except ProviderError as exc:
        raise upstream_failure(exc) from exc
    except StopAsyncIteration:
        return Finish("stop")
