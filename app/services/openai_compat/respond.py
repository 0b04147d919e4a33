"""An answer's events as OpenAI sends them: a chunk stream, or one `chat.completion` object."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from app.services.llm import (
    Finish,
    ModelRegistry,
    ProviderError,
    ReasoningDelta,
    TextDelta,
    ToolCallRequest,
    Usage,
)
from app.services.openai_compat.service import Answer, upstream_failure
from app.services.openai_compat.wire import DONE_FRAME, error_frame, tool_call_json

_STATUS_OF = {"upstream_timeout": 504, "generation_timeout": 504}


def model_cards(registry: ModelRegistry) -> list[dict[str, Any]]:
    """The available models as OpenAI model cards (`created`: the config file's time)."""
    source = registry.source
    created = int(source.stat().st_mtime) if source is not None and source.exists() else 0
    return [
        {"id": m.id, "object": "model", "created": created, "owned_by": m.provider}
        for m in registry.list()
        if registry.is_available(m.id)
    ]


def shutdown_frame(_last: bytes | None) -> bytes:
    """The stream's end when the server stops first."""
    return error_frame("The server is shutting down", status=503, code="server_shutdown")


class _Pump:
    """The frames a producer task made and the consumer has not sent yet."""

    __slots__ = ("error", "finished", "frames", "waiter")

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.waiter: asyncio.Future[None] | None = None
        self.finished = False
        self.error: BaseException | None = None

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def run(self, source: AsyncIterator[bytes]) -> None:
        """Take every frame of `source` (the upstream's pace), waking the consumer."""
        try:
            async for frame in source:
                self.frames.append(frame)
                self._wake()
        except Exception as exc:  # handed to the consumer, which raises it
            self.error = exc
        finally:
            self.finished = True
            self._wake()


async def stream_frames(answer: Answer) -> AsyncIterator[bytes]:
    """The answer's chunk frames as the client's writes: every frame made while the last
    write went out is sent together in the next one (an upstream faster than the client
    costs one write per batch, not per token, as /chat/stream's log reader does)."""
    pump = _Pump()
    producer = asyncio.create_task(pump.run(_frames(answer)))
    loop = asyncio.get_running_loop()
    try:
        while True:
            frames = pump.frames
            if frames:
                pump.frames = []
                yield frames[0] if len(frames) == 1 else b"".join(frames)
                continue
            if pump.finished:
                break
            pump.waiter = loop.create_future()
            await pump.waiter
        if pump.error is not None:
            raise pump.error
    finally:
        if not producer.done():
            producer.cancel()  # a client that left: the upstream request ends now
        await asyncio.gather(producer, return_exceptions=True)


async def _frames(answer: Answer) -> AsyncIterator[bytes]:
    """`chat.completion.chunk` frames: the role first, then deltas, the finish, the usage
    (with `include_usage`) and `[DONE]`; a failure is one error frame, then the end."""
    completion = answer.completion
    content_frame = completion.content_frame
    head: dict[str, Any] = {"role": "assistant", "content": ""}
    yield completion.delta_frame(head)
    usage = (0, 0)
    calls = 0
    event: Any = answer.first
    rest = answer.rest
    try:
        while True:
            kind = type(event)
            if kind is TextDelta:
                yield content_frame(event.content)
            elif kind is ReasoningDelta:
                if event.content:
                    yield completion.delta_frame({"reasoning_content": event.content})
            elif kind is ToolCallRequest:
                yield completion.delta_frame({"tool_calls": [tool_call_json(calls, event)]})
                calls += 1
            elif kind is Usage:
                usage = (usage[0] + event.input_tokens, usage[1] + event.output_tokens)
            elif kind is Finish:
                yield completion.delta_frame({}, event.reason)
            try:
                event = await anext(rest)
            except StopAsyncIteration:
                break
    except ProviderError as exc:
        status = _STATUS_OF.get(exc.code, 502)
        yield error_frame(exc.message, status=status, code=exc.code)
        return
    finally:
        await rest.aclose()  # a client that left: the upstream request ends now, not at GC
    if answer.include_usage:
        yield completion.usage_frame(*usage)
    yield DONE_FRAME


async def collect(answer: Answer) -> dict[str, Any]:
    """The whole `chat.completion` object (a failure is an HTTP error: nothing was sent)."""
    text: list[str] = []
    reasoning: list[str] = []
    calls: list[ToolCallRequest] = []
    usage = (0, 0)
    finish = "stop"
    event: Any = answer.first
    try:
        while True:
            kind = type(event)
            if kind is TextDelta:
                text.append(event.content)
            elif kind is ReasoningDelta:
                reasoning.append(event.content)
            elif kind is ToolCallRequest:
                calls.append(event)
            elif kind is Usage:
                usage = (usage[0] + event.input_tokens, usage[1] + event.output_tokens)
            elif kind is Finish:
                finish = event.reason
            try:
                event = await anext(answer.rest)
            except StopAsyncIteration:
                break
    except ProviderError as exc:
        raise upstream_failure(exc) from exc
    finally:
        await answer.rest.aclose()
    return answer.completion.whole(
        text="".join(text),
        reasoning="".join(reasoning),
        calls=calls,
        finish_reason=finish,
        usage=usage,
        extra=answer.extra,
    )
