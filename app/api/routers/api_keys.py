"""`/users/me/api-keys`: the caller's personal API keys (managed only from a signed-in session)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Response, status

from app.api.deps import ApiKeyServiceDep, SignedInPrincipal
from app.api.openapi import errors
from app.schemas.api_keys import ApiKeyCreate, ApiKeyCreated, ApiKeyRead

router = APIRouter(prefix="/users/me/api-keys", tags=["users"])


@router.post("", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED)
async def create_api_key(
    body: ApiKeyCreate, principal: SignedInPrincipal, keys: ApiKeyServiceDep
) -> Any:
    """Create a key; the answer's `key` is shown this once."""
    return await keys.create(user=principal.user, data=body)


@router.get("", response_model=list[ApiKeyRead])
async def list_api_keys(principal: SignedInPrincipal, keys: ApiKeyServiceDep) -> Any:
    """The caller's keys that are not revoked (without the keys themselves)."""
    return await keys.list_keys(user=principal.user)


@router.delete(
    "/{key_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors((404, "`not_found`"))
)
async def revoke_api_key(
    key_id: uuid.UUID, principal: SignedInPrincipal, keys: ApiKeyServiceDep
) -> Response:
    """Revoke a key: it stops working at once, on every worker."""
    await keys.revoke(user=principal.user, key_id=key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
