"""The agent loop of one generation: model ⇄ tools, written to the generation's event log.

Runs as its own task; the HTTP response only reads the log. The hot path per token is a
list append and one `publish` (JSON-encode once, wake readers): no DB or log write.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from loguru import logger

from app.core.status import MessageStatus
from app.db.base import utcnow
from app.observability import metrics
from app.schemas.events import (
    ChatEventData,
    ChatEventName,
    DoneEvent,
    ErrorEvent,
    FinishReason,
    ModelEvent,
    SnapshotEvent,
    StartEvent,
    TitleEvent,
    UsageEvent,
)
from app.services.chat.approval_gate import ApprovalGate
from app.services.chat.outcome import INTERRUPTED, STATUS_OF, StopTurn, outcome_of
from app.services.chat.registry import Generation, GenerationRegistry
from app.services.chat.store import TurnStore, make_title
from app.services.chat.tool_round import KeepImage, run_tool_round
from app.services.chat.turn import TurnRequest, TurnState
from app.services.llm import (
    ChatMessage,
    Finish,
    LLMEvent,
    ModelConfig,
    ModelRegistry,
    ProviderError,
    ReasoningDelta,
    TextDelta,
    ToolCallRequest,
    Usage,
    storable_event,
)
from app.services.tools import Toolbox

CHECKPOINT_EVERY_S = 5.0


class AgentRun:
    """Drives one generation from `start` to `done`/`error`."""

    def __init__(
        self,
        *,
        request: TurnRequest,
        gen: Generation,
        generations: GenerationRegistry,
        models: ModelRegistry,
        tools: Toolbox,
        store: TurnStore,
        max_tool_rounds: int,
        max_duration_s: float,
        keep_image: KeepImage | None = None,
        approval_timeout_s: float = 300.0,
    ) -> None:
        self.req, self.gen, self.generations = request, gen, generations
        self.keep_image = keep_image
        self.models, self.tools, self.store = models, tools, store
        self.max_tool_rounds, self.max_duration_s = max_tool_rounds, max_duration_s
        self.state = TurnState(model_id=request.model.id)
        resumed = request.resumed
        if resumed is not None:  # its text, tool calls and usage are saved again at the end
            self.state.parts.append(resumed.content)
            self.state.tool_calls.extend(resumed.tool_calls)
            if resumed.reasoning:  # shown and saved before the new reasoning
                self.state.reasoning.parts.append(resumed.reasoning)
            if resumed.usage:
                self.state.saw_usage = True
                self.state.input_tokens = int(resumed.usage.get("input_tokens", 0))
                self.state.output_tokens = int(resumed.usage.get("output_tokens", 0))
                self.state.cached_input_tokens = int(resumed.usage.get("cached_input_tokens", 0))
                cost = resumed.usage.get("cost_usd")
                self.state.cost_usd = float(cost) if isinstance(cost, int | float) else None
        self._started = False
        self._persist: asyncio.Task[None] | None = None
        self._last_checkpoint = time.monotonic()
        self._checkpoint: asyncio.Task[None] | None = None
        self.gate = ApprovalGate(
            gen=gen,
            generations=generations,
            store=store,
            ids=request.ids,
            state=self.state,
            emit=self._emit,
            auto_approved=request.auto_approved,
            timeout_s=approval_timeout_s,
        )

    def _emit(self, name: ChatEventName, data: ChatEventData) -> None:
        self.generations.publish(self.gen, name, data)

    async def _ensure_started(self) -> None:
        if self._started:
            return
        assert self._persist is not None
        await self._persist
        self._emit_start()

    def _emit_start(self) -> None:
        if not self._started:
            self._started = True
            ids = self.req.ids
            start: StartEvent = {
                "conversation_id": str(ids.conversation_id),
                "user_message_id": str(ids.user_message_id),
                "message_id": str(ids.message_id),
                "model": self.req.model.id,
            }
            self._emit("start", start)
            resumed = self.req.resumed
            if resumed is not None:  # what the new deltas are appended to
                snapshot: SnapshotEvent = {
                    "message_id": str(ids.message_id),
                    "content": resumed.content,
                    "reasoning": resumed.reasoning,
                    "tool_calls": resumed.tool_calls or None,
                    "status": MessageStatus.STREAMING,
                }
                self._emit("snapshot", snapshot)

    def _on_persisted(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is None:
            self._emit_start()

    async def run(self) -> None:
        """Run the turn; always ends the log with `done` or `error` and saves the reply."""
        # the model's task first: its request is on the wire before the user message is
        # written (the write then overlaps the model's time to first token)
        work = asyncio.create_task(self._rounds())
        req = self.req
        self._persist = asyncio.create_task(
            self.store.resume(ids=req.ids, now=utcnow())
            if req.resumed is not None
            else self.store.begin(
                ids=req.ids,
                new_conversation=req.new_conversation,
                model_id=req.model.id,
                text=req.text,
                now=utcnow(),
                parent_id=req.parent_id,
                user_message=req.user_message,
                attachments=req.attachments,
            )
        )
        self._persist.add_done_callback(self._on_persisted)
        metrics.generations_active.inc()
        try:
            await self._run(work)
        finally:
            metrics.generations_active.dec()
            metrics.add_tokens(self.state.token_count, self.state.model_id)

    async def _run(self, work: asyncio.Task[StopTurn]) -> None:
        """Race the model/tool rounds against cancel and the time limit, then finish."""
        cancel_wait = self.gen.cancel_requested.future()  # a future: no task per generation
        outcome: StopTurn
        waits: set[asyncio.Future[Any]] = {work, cancel_wait}
        done, _ = await asyncio.wait(
            waits, timeout=self.max_duration_s, return_when="FIRST_COMPLETED"
        )
        if work in done:
            outcome = outcome_of(work)
        else:
            work.cancel()
            with contextlib.suppress(BaseException):
                await work
            outcome = (
                INTERRUPTED
                if self.gen.interrupted  # a shutdown while a call awaited approval
                else StopTurn(FinishReason.CANCELLED)
                if cancel_wait in done
                else StopTurn(
                    FinishReason.ERROR,
                    code="generation_timeout",
                    message="The answer took too long.",
                )
            )
        await self._finish(outcome)

    async def _finish(self, outcome: StopTurn) -> None:
        try:
            await self._ensure_started()
        except Exception as exc:
            logger.opt(exception=exc).error("could not save the user message")
            failed: ErrorEvent = {"code": "storage_error", "message": "Could not save the message."}
            self._emit("error", failed)
            return
        if self._checkpoint is not None:
            with contextlib.suppress(Exception):
                await self._checkpoint
        status = STATUS_OF.get(outcome.reason, MessageStatus.COMPLETE)
        title = make_title(self.req.text) if self.req.make_title else None
        usage = self.state.usage()
        # saved before the closing events are sent: store the id the terminal one will get
        terminal_id = self.gen.log.next_id + (usage is not None) + bool(title)
        await self.store.finish(
            ids=self.req.ids,
            content=self.state.text,
            status=status,
            model_id=self.state.model_id,
            usage=usage,
            tool_calls=self.state.tool_calls,
            title=title,
            now=utcnow(),
            error_code=(outcome.code or "error") if status == MessageStatus.ERROR else None,
            last_event_id=terminal_id,
            reasoning=self.state.reasoning.text,
            finish_reason=outcome.reason,
            attachments=self.state.attachments or None,
        )
        if usage is not None:
            counted: UsageEvent = {
                "input_tokens": self.state.input_tokens,
                "output_tokens": self.state.output_tokens,
            }
            self._emit("usage", counted)
        if title:
            titled: TitleEvent = {
                "conversation_id": str(self.req.ids.conversation_id),
                "title": title,
            }
            self._emit("title", titled)
        if outcome.reason == FinishReason.ERROR:
            error: ErrorEvent = {"code": outcome.code or "error", "message": outcome.message}
            self._emit("error", error)
        else:
            done: DoneEvent = {
                "message_id": str(self.req.ids.message_id),
                "finish_reason": outcome.reason,
            }
            self._emit("done", done)

    async def _rounds(self) -> StopTurn:
        messages = list(self.req.messages)
        for round_no in range(self.max_tool_rounds + 1):
            calls, reason = await self._stream_round(messages, first=round_no == 0)
            if not calls:
                return StopTurn(reason)
            if round_no == self.max_tool_rounds:
                return StopTurn(FinishReason.TOOL_LIMIT)
            # the round's signed thinking goes back to the model that produced it (only it)
            blocks = self.state.reasoning.take_blocks()
            messages.append(
                ChatMessage(role="assistant", content="", tool_calls=calls, reasoning_blocks=blocks)
            )
            results = await self._run_tools(calls, round_no)
            messages.extend(
                ChatMessage(role="tool", content=content, tool_call_id=call.id)
                for call, content in zip(calls, results, strict=True)
            )
        return StopTurn(FinishReason.TOOL_LIMIT)

    async def _stream_round(
        self, messages: list[ChatMessage], *, first: bool
    ) -> tuple[list[ToolCallRequest], FinishReason]:
        calls: list[ToolCallRequest] = []
        reason = "stop"
        state, emit, parts = self.state, self._emit, self.state.parts
        async for event in self._events(messages, first=first):
            kind = type(event)
            if kind is TextDelta:
                if not self._started:
                    await self._ensure_started()
                content = event.content  # type: ignore[union-attr]
                parts.append(content)
                state.token_count += 1
                emit("delta", {"content": content})
                if time.monotonic() - self._last_checkpoint > CHECKPOINT_EVERY_S:
                    self._schedule_checkpoint()
            elif kind is ReasoningDelta:
                if not self._started:
                    await self._ensure_started()
                shown = state.reasoning.add(event, model_id=state.model_id)  # type: ignore[arg-type]
                if shown:
                    state.token_count += 1
                    emit("reasoning", {"content": shown})
                    if time.monotonic() - self._last_checkpoint > CHECKPOINT_EVERY_S:
                        self._schedule_checkpoint()
            elif kind is ToolCallRequest:
                calls.append(event)  # type: ignore[arg-type]
            elif kind is Usage:
                state.add_usage(event, self._current_model())  # type: ignore[arg-type]
            elif kind is Finish:
                reason = event.reason  # type: ignore[union-attr]
        # the model asked for tools: the turn goes on (and a call-less request ends it)
        return calls, FinishReason.STOP if reason == "tool_calls" else FinishReason(reason)

    async def _events(self, messages: list[ChatMessage], *, first: bool) -> AsyncIterator[LLMEvent]:
        """The provider's events, trying fallbacks when a model fails before its first event."""
        candidates = [self._current_model()]
        if first:
            candidates += [m for m in self.req.fallbacks if self.models.is_available(m.id)]
        for index, model in enumerate(candidates):
            produced = False
            started = time.monotonic()
            try:
                stream = self.models.provider_for(model).stream(
                    model=model,
                    messages=messages,
                    tools=self.req.tools if model.supports_tools else [],
                    temperature=self.req.temperature,
                    max_tokens=self.req.max_tokens,
                )
                async for event in stream:
                    if not produced:
                        produced = True
                        metrics.observe_llm_first_token(model.id, time.monotonic() - started)
                        if index:  # a fallback answers: say which (`start` named the request's)
                            await self._announce_model(model)
                    yield storable_event(event)
                metrics.observe_llm(model.id, time.monotonic() - started)
                self.state.model_id = model.id
                return
            except ProviderError as exc:
                metrics.observe_llm(model.id, time.monotonic() - started, error=exc.code)
                if produced or index == len(candidates) - 1:
                    raise StopTurn(FinishReason.ERROR, code=exc.code, message=exc.message) from exc
                logger.warning(
                    "model {} failed before its first token ({}); trying {}",
                    model.id,
                    exc.code,
                    candidates[index + 1].id,
                )
                self.state.model_id = candidates[index + 1].id

    async def _announce_model(self, model: ModelConfig) -> None:
        """The `model` event: from now on this model answers (and is saved on the message)."""
        await self._ensure_started()
        announced: ModelEvent = {"message_id": str(self.req.ids.message_id), "model": model.id}
        self._emit("model", announced)

    def _current_model(self) -> ModelConfig:
        return self.models.get(self.state.model_id) or self.req.model

    def _schedule_checkpoint(self) -> None:
        self._last_checkpoint = time.monotonic()
        if self._checkpoint is None or self._checkpoint.done():
            self._checkpoint = asyncio.create_task(
                self.store.checkpoint(
                    user_id=self.req.ids.user_id,
                    message_id=self.req.ids.message_id,
                    content=self.state.text,
                    last_event_id=self.gen.log.next_id - 1,  # the text is that of this event
                    reasoning=self.state.reasoning.text,
                )
            )

    async def _run_tools(self, calls: list[ToolCallRequest], round_no: int) -> list[str]:
        """Announce every call, run them concurrently, and record them in call order."""
        await self._ensure_started()
        return await run_tool_round(
            calls,
            round_no=round_no,
            toolbox=self.tools,
            emit=self._emit,
            records=self.state.tool_calls,
            keep_image=self.keep_image,
            attachments=self.state.attachments,
            gate=self.gate,
        )
