"""`/chat`: models, streamed answers (start, cancel, re-attach) and history."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response, status
from fastapi.responses import StreamingResponse

from app.api.deps import (
    ChatServiceDep,
    ChatStarter,
    CurrentUser,
    HistoryServiceDep,
    ModelsDep,
    ShutdownDep,
    StreamUser,
)
from app.api.openapi import errors
from app.api.streaming import DirectStreamingResponse
from app.core.errors import InvalidInput
from app.core.shutdown import StreamShutdown
from app.core.sse import SSE_HEADERS, SSE_MEDIA_TYPE
from app.observability import metrics
from app.schemas.chat import (
    ChatStreamRequest,
    ConversationPage,
    ConversationRead,
    ConversationSummary,
    ConversationUpdate,
    ModelList,
    ToolCallId,
    ToolDecision,
)
from app.schemas.common import Text
from app.services.chat.events import shutdown_frame

router = APIRouter(prefix="/chat", tags=["chat"])

SSE_DOC: dict[int | str, dict[str, Any]] = {
    "200": {
        "description": "Server-Sent Events: start, model (a fallback model answers), reasoning "
        "(the model's visible reasoning, saved as Message.reasoning), delta, tool_call, "
        "tool_progress, tool_result, tool_approval (a call waits for approve/deny), "
        "tool_approval_decided, usage, title, done | error. A re-attach that "
        "cannot replay exactly from Last-Event-ID sends snapshot `{message_id, content, "
        "reasoning, tool_calls, status}` (replace the message with it) and goes on; ids never "
        "restart. On server shutdown the stream ends with error `server_shutdown` whose id is "
        "the last one sent: re-attach with it.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


async def tracked(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Count the open stream for /metrics and the dashboard."""
    metrics.streams_active.inc()
    try:
        async for chunk in body:
            yield chunk
    finally:
        metrics.streams_active.dec()


def sse_response(
    shutdown: StreamShutdown, body: AsyncIterator[bytes], *, after: int
) -> StreamingResponse:
    """A chat stream that ends with `error` `server_shutdown` if the server stops first."""
    guarded = shutdown.guard(body, terminal=partial(shutdown_frame, after=after))
    return DirectStreamingResponse(tracked(guarded), media_type=SSE_MEDIA_TYPE, headers=SSE_HEADERS)


@router.get("/models", response_model=ModelList)
async def list_models(models: ModelsDep, _user: CurrentUser) -> Any:
    """The models a client may choose, with availability and the default."""
    return {"items": models.describe()}


@router.post(
    "/stream",
    response_class=StreamingResponse,
    responses={
        **SSE_DOC,
        **errors(
            (
                400,
                "`model_unavailable`; `model_cannot_see_images`: an attached image for a model "
                "without `supports_vision`; `bad_request`: a body that cannot be read",
            ),
            (
                404,
                "`not_found`: no such conversation, `parent_id` or attachment (a deleted file "
                "too), or another user's",
            ),
            (
                429,
                "`rate_limited`: too many messages or answers running; `quota_exceeded`: a "
                "usage quota is spent (`Retry-After`: until it resets)",
            ),
        ),
    },
)
async def stream_answer(body: ChatStreamRequest, start: ChatStarter) -> StreamingResponse:
    """Send a message and stream the answer as Server-Sent Events."""
    caller, chat = start.principal, start.chat
    message_id = await chat.start(user=caller.user, preferences=caller.preferences, body=body)
    return sse_response(start.shutdown, chat.follow(message_id=message_id), after=0)


@router.post(
    "/stream/{message_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_class=Response
)
async def cancel_answer(message_id: uuid.UUID, user: CurrentUser, chat: ChatServiceDep) -> Response:
    """Stop a running answer (from any device of the same user)."""
    await chat.cancel(user=user, message_id=message_id)
    return Response(status_code=status.HTTP_202_ACCEPTED)


_DECIDED = errors(
    (404, "`not_found`: no tool call awaiting approval with this id (or another user's)"),
    (409, "`already_decided`: the call was approved, denied or timed out before"),
)


def _tool_decision(*, approve: bool, doc: str) -> Callable[..., Awaitable[Response]]:
    """The route that approves (or denies) a tool call awaiting approval."""

    async def decide(
        message_id: uuid.UUID,
        call_id: ToolCallId,
        user: CurrentUser,
        chat: ChatServiceDep,
        body: ToolDecision | None = None,
    ) -> Response:
        await chat.decide_tool(
            user=user,
            message_id=message_id,
            call_id=call_id,
            approve=approve,
            reason=body.reason if body else None,
        )
        return Response(status_code=status.HTTP_202_ACCEPTED)

    decide.__doc__ = doc
    decide.__name__ = "approve_tool" if approve else "deny_tool"
    return decide


for _verb, _approve, _doc in (
    ("approve", True, "Let a tool call that awaits approval run (from any device of the user)."),
    ("deny", False, "Refuse a tool call that awaits approval: the model gets an error result."),
):
    router.post(
        f"/stream/{{message_id}}/tools/{{call_id}}/{_verb}",
        status_code=status.HTTP_202_ACCEPTED,
        response_class=Response,
        responses=_DECIDED,
    )(_tool_decision(approve=_approve, doc=_doc))


@router.get(
    "/stream/{message_id}",
    response_class=StreamingResponse,
    responses={
        **SSE_DOC,
        **errors((422, "`validation_error`: a `Last-Event-ID` that is not an integer")),
    },
)
async def reattach_answer(
    message_id: uuid.UUID,
    user: StreamUser,
    chat: ChatServiceDep,
    shutdown: ShutdownDep,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last_event_id: Annotated[int | None, Query(ge=0)] = None,
) -> StreamingResponse:
    """Re-attach to an answer: what was missed after Last-Event-ID (or a snapshot), then live."""
    after = last_event_id or 0
    if last_event_id_header:
        try:
            after = int(last_event_id_header)
        except ValueError as exc:
            raise InvalidInput("Last-Event-ID must be an integer") from exc
        if after < 0:
            raise InvalidInput("Last-Event-ID must not be negative")
    body = await chat.attach(user=user, message_id=message_id, last_event_id=after)
    return sse_response(shutdown, body, after=after)


@router.get(
    "/history",
    response_model=ConversationPage,
    responses=errors((400, "`invalid_cursor`: start again without `cursor`")),
)
async def list_history(
    user: CurrentUser,
    history: HistoryServiceDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[Text | None, Query(max_length=512)] = None,
    q: Annotated[Text | None, Query(max_length=200, description="search titles and text")] = None,
    archived: Annotated[
        bool | None, Query(description="true: only archived; false: only active; unset: all")
    ] = None,
) -> Any:
    """The user's conversations, newest activity first."""
    return await history.list(
        user_id=user.id, limit=limit, cursor=cursor, query=q, archived=archived
    )


@router.get(
    "/history/{conversation_id}",
    response_model=ConversationRead,
    responses=errors((404, "`not_found`: no such conversation, or `leaf` is not in it")),
)
async def read_conversation(
    conversation_id: uuid.UUID,
    user: CurrentUser,
    history: HistoryServiceDep,
    leaf: Annotated[
        uuid.UUID | None,
        Query(description="the branch through this message, down to its newest descendant"),
    ] = None,
    everything: Annotated[
        bool, Query(alias="all", description="every message of the tree, oldest first")
    ] = False,
) -> Any:
    """One conversation with its active branch (root → current leaf), oldest first."""
    return await history.get(
        user_id=user.id, conversation_id=conversation_id, leaf=leaf, everything=everything
    )


@router.patch("/history/{conversation_id}", response_model=ConversationSummary)
async def update_conversation(
    conversation_id: uuid.UUID,
    body: ConversationUpdate,
    user: CurrentUser,
    history: HistoryServiceDep,
) -> Any:
    """Rename, pin or archive a conversation."""
    return await history.update(user_id=user.id, conversation_id=conversation_id, data=body)


@router.delete("/history/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_conversation(
    conversation_id: uuid.UUID, user: CurrentUser, history: HistoryServiceDep
) -> Response:
    """Delete a conversation and all its messages."""
    await history.delete(user_id=user.id, conversation_id=conversation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
