"""`/chat/messages/{id}/…`: regenerate an answer, edit a question, continue a cut answer."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from app.api.deps import ChatStarter
from app.api.openapi import errors
from app.api.routers.chat import SSE_DOC, sse_response
from app.schemas.chat import EditRequest, TurnOptions

router = APIRouter(prefix="/chat/messages", tags=["chat"])

_ROLE = "`wrong_message_role`: the message is not {}; `model_unavailable`"
_NOT_FOUND = (404, "`not_found`: no such message, or another user's")
_TOO_MANY = (429, "`rate_limited`: too many messages, or too many answers running at once")


@router.post(
    "/{message_id}/regenerate",
    response_class=StreamingResponse,
    responses={
        **SSE_DOC,
        **errors((400, _ROLE.format("an assistant message")), _NOT_FOUND, _TOO_MANY),
    },
)
async def regenerate_answer(
    message_id: uuid.UUID, start: ChatStarter, body: TurnOptions | None = None
) -> StreamingResponse:
    """A new answer beside this one (a sibling below the same question), streamed."""
    caller, chat = start.principal, start.chat
    new_id = await chat.regenerate(
        user=caller.user,
        preferences=caller.preferences,
        message_id=message_id,
        body=body or TurnOptions(),
    )
    return sse_response(start.shutdown, chat.follow(message_id=new_id), after=0)


@router.post(
    "/{message_id}/edit",
    response_class=StreamingResponse,
    responses={
        **SSE_DOC,
        **errors(
            (400, _ROLE.format("a user message")),
            _NOT_FOUND,
            (409, "`generation_running`: its answer is still being generated"),
            _TOO_MANY,
        ),
    },
)
async def edit_question(
    message_id: uuid.UUID, body: EditRequest, start: ChatStarter
) -> StreamingResponse:
    """A new version of this question (a sibling with the same parent), then its answer."""
    caller, chat = start.principal, start.chat
    new_id = await chat.edit(
        user=caller.user, preferences=caller.preferences, message_id=message_id, body=body
    )
    return sse_response(start.shutdown, chat.follow(message_id=new_id), after=0)


@router.post(
    "/{message_id}/continue",
    response_class=StreamingResponse,
    responses={
        **SSE_DOC,
        **errors(
            (400, _ROLE.format("an assistant message")),
            _NOT_FOUND,
            (
                409,
                "`generation_running`: it is still being generated; `not_continuable`: it "
                "did not end with `length`, `cancelled` or `error`",
            ),
            _TOO_MANY,
        ),
    },
)
async def continue_answer(
    message_id: uuid.UUID, start: ChatStarter, body: TurnOptions | None = None
) -> StreamingResponse:
    """More text for an answer that was cut, on the same message (a `snapshot` with its
    saved text comes first, then the new deltas)."""
    caller, chat = start.principal, start.chat
    await chat.resume(
        user=caller.user,
        preferences=caller.preferences,
        message_id=message_id,
        body=body or TurnOptions(),
    )
    return sse_response(start.shutdown, chat.follow(message_id=message_id), after=0)
