"""`/v1`: the OpenAI-compatible API (`GET /v1/models`, `POST /v1/chat/completions`).

Errors on these routes have OpenAI's shape (app/api/openai_errors.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse

from app.api.deps import ChatStarter, CurrentPrincipal
from app.api.openapi import answers, errors
from app.api.routers.chat import tracked
from app.api.streaming import DirectStreamingResponse
from app.core.shutdown import StreamShutdown
from app.core.sse import SSE_HEADERS, SSE_MEDIA_TYPE
from app.schemas.openai_compat import ChatCompletionRequest, ModelCardList
from app.services.auth import Principal
from app.services.openai_compat import (
    CompletionService,
    collect,
    model_cards,
    shutdown_frame,
    stream_frames,
)
from app.state import AppState

router = APIRouter(prefix="/v1", tags=["openai"])

COMPLETION_DOC: dict[int | str, dict[str, Any]] = {
    "200": {
        "description": "A `chat.completion` object, or with `stream: true` Server-Sent Events: "
        "`data: {chat.completion.chunk}` frames, then `data: [DONE]`. A failure after the "
        'stream started is one `data: {"error": {...}}` frame, and the stream ends.',
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/event-stream": {"schema": {"type": "string"}},
        },
    }
}


@dataclass(frozen=True, slots=True)
class CompletionStart:
    """What a completion needs: the caller, the use cases, the shutdown signal."""

    principal: Principal
    service: CompletionService
    shutdown: StreamShutdown


@answers(429)  # RATE_LIMIT_API_KEY, quotas, concurrent answers
async def start_completion(request: Request, start: ChatStarter) -> CompletionStart:
    """The chat starter (admission, caller, chat use cases) bound to the /v1 use cases."""
    state: AppState = request.app.state.vektor
    service = CompletionService(chat=start.chat, usage_log=state.api_usage)
    return CompletionStart(start.principal, service, start.shutdown)


# scope="function": admission ends when the route returns, not with the stream
CompletionStarter = Annotated[CompletionStart, Depends(start_completion, scope="function")]


@router.get("/models", response_model=ModelCardList, responses=errors(429))
async def list_models(request: Request, caller: CurrentPrincipal) -> Any:
    """The available models in OpenAI's list shape."""
    state: AppState = request.app.state.vektor
    key = str(caller.api_key_id or caller.user.id)
    await state.limiter.hit(state.settings.rate_limit_api_key, "v1", key)
    return {"object": "list", "data": model_cards(state.models)}


@router.post(
    "/chat/completions",
    response_class=StreamingResponse,
    responses={
        **COMPLETION_DOC,
        **errors(
            (
                400,
                "`invalid_request_error`: a body OpenAI's API would refuse, or a feature "
                "this server refuses (`n` > 1, `logprobs`, an image URL that is not `data:`)",
            ),
            (404, "`model_not_found`: no such model, or it is not available"),
            (502, "`upstream_*`: the model's provider failed before the answer started"),
            (504, "`upstream_timeout`: the model's provider did not answer in time"),
        ),
    },
)
async def chat_completions(body: ChatCompletionRequest, start: CompletionStarter) -> Response:
    """Chat Completions in the OpenAI wire format (stream or not)."""
    answer = await start.service.answer(principal=start.principal, body=body)
    stored = answer.extra.get("vektor")
    headers = id_headers(stored) if stored else {}
    if not body.stream:
        whole = orjson.dumps(await collect(answer))
        return Response(whole, media_type="application/json", headers=headers)
    guarded = start.shutdown.guard(stream_frames(answer), terminal=shutdown_frame)
    return DirectStreamingResponse(
        tracked(guarded),
        media_type=SSE_MEDIA_TYPE,
        headers={**SSE_HEADERS, **headers} if headers else SSE_HEADERS,
    )


def id_headers(stored: dict[str, str | None]) -> dict[str, str]:
    """`X-Vektor-Conversation-Id` / `X-Vektor-Message-Id` of a stored exchange."""
    names = (("X-Vektor-Conversation-Id", "conversation_id"), ("X-Vektor-Message-Id", "message_id"))
    return {name: str(stored[key]) for name, key in names if stored.get(key)}
