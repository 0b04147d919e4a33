"""`/chat`: tree edits every device follows (switch the active branch, delete a subtree)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Response, status

from app.api.deps import CurrentUser, TreeEditServiceDep
from app.api.openapi import errors
from app.schemas.chat import BranchSwitch, ConversationRead

router = APIRouter(prefix="/chat", tags=["chat"])


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
