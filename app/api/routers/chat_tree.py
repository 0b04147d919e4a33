"""`/chat` tree routes: regenerate an answer, edit a question, continue a cut answer (each
streamed like `POST /chat/stream`); switch the active branch, delete a subtree (tree edits
every device follows)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Response, status
from fastapi.responses import StreamingResponse

from app.api.deps import ChatStarter, CurrentUser, TreeEditServiceDep
from app.api.openapi import errors
from app.api.routers.chat import SSE_DOC, sse_response
from app.schemas.chat import BranchSwitch, ConversationRead, EditRequest, TurnOptions

router = APIRouter(prefix="/chat", tags=["chat"])

_ROLE = (
    "`wrong_message_role`: the message is not {}; `model_unavailable`; "
    "`model_cannot_see_images`: an attached image for a model without vision"
)
_NOT_FOUND = (404, "`not_found`: no such message, or another user's")
_TOO_MANY = (
    429,
    "`rate_limited`: too many messages or answers running; `quota_exceeded`: a usage quota "
    "is spent (`Retry-After`: until it resets)",
)


@router.post(
    "/messages/{message_id}/regenerate",
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
    "/messages/{message_id}/edit",
    response_class=StreamingResponse,
    responses={
        **SSE_DOC,
        **errors(
            (400, _ROLE.format("a user message")),
            (404, "`not_found`: no such message or attachment, or another user's"),
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
    "/messages/{message_id}/continue",
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


@router.put(
    "/history/{conversation_id}/current",
    response_model=ConversationRead,
    responses=errors((404, "`not_found`: no such conversation or message, or another user's")),
)
async def switch_branch(
    conversation_id: uuid.UUID, body: BranchSwitch, user: CurrentUser, tree: TreeEditServiceDep
) -> Any:
    """Make the branch through a message the active one (its newest descendant is the leaf)."""
    return await tree.switch_branch(
        user_id=user.id, conversation_id=conversation_id, message_id=body.message_id
    )


@router.delete(
    "/messages/{message_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(
        (404, "`not_found`: no such message, or another user's"),
        (409, "`generation_running`: an answer in this subtree is still being generated"),
    ),
)
async def delete_message(
    message_id: uuid.UUID, user: CurrentUser, tree: TreeEditServiceDep
) -> Response:
    """Delete a message and all its descendants."""
    await tree.delete_subtree(user_id=user.id, message_id=message_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
