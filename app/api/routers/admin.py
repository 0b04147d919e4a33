"""`/admin` (admin only): accounts and the audit log."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status

from app.api.deps import AdminUser
from app.api.deps_system import AdminServiceDep, UsageServiceDep
from app.api.openapi import errors
from app.schemas.admin import (
    AdminUserPage,
    AdminUserRead,
    AdminUserUpdate,
    AuditAction,
    AuditEventPage,
)
from app.schemas.common import Text
from app.schemas.usage import UsageReport
from app.services.usage.report import as_csv

router = APIRouter(prefix="/admin", tags=["admin"])

_CURSOR = errors((400, "`invalid_cursor`: start again without `cursor`"))
_LAST_ADMIN = (409, "`last_admin`: the last active administrator cannot be removed")
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[Text | None, Query(max_length=512)]


@router.get("/users", response_model=AdminUserPage, responses=_CURSOR)
async def list_users(
    _admin: AdminUser,
    admin: AdminServiceDep,
    limit: Limit = 20,
    cursor: Cursor = None,
    q: Annotated[
        Text | None, Query(max_length=200, description="part of the email, username or name")
    ] = None,
) -> Any:
    """Every account, newest first (search with `q`)."""
    return await admin.list_users(limit=limit, cursor=cursor, query=q)


@router.get("/users/{user_id}", response_model=AdminUserRead)
async def read_user(user_id: uuid.UUID, _admin: AdminUser, admin: AdminServiceDep) -> Any:
    """One account."""
    return await admin.get_user(user_id=user_id)


@router.patch(
    "/users/{user_id}",
    response_model=AdminUserRead,
    responses=errors(_LAST_ADMIN, (422, "`validation_error`: `is_active` or `is_admin` null")),
)
async def update_user(
    user_id: uuid.UUID, body: AdminUserUpdate, actor: AdminUser, admin: AdminServiceDep
) -> Any:
    """Activate or deactivate (signs out everywhere), grant or revoke admin, set quotas."""
    return await admin.update_user(actor=actor, user_id=user_id, data=body)


@router.post("/users/{user_id}/revoke-sessions", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_sessions(user_id: uuid.UUID, actor: AdminUser, admin: AdminServiceDep) -> Response:
    """Sign the user out of every device (their tokens stop working at once)."""
    await admin.revoke_sessions(actor=actor, user_id=user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(_LAST_ADMIN)
)
async def delete_user(user_id: uuid.UUID, actor: AdminUser, admin: AdminServiceDep) -> Response:
    """Delete the account and all its data."""
    await admin.delete_user(actor=actor, user_id=user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/audit", response_model=AuditEventPage, responses=_CURSOR)
async def list_audit(
    _admin: AdminUser,
    admin: AdminServiceDep,
    limit: Limit = 20,
    cursor: Cursor = None,
    action: AuditAction | None = None,
    actor_id: uuid.UUID | None = None,
    target_id: uuid.UUID | None = None,
) -> Any:
    """Security events, newest first (filter by action, actor or target)."""
    return await admin.list_audit(
        limit=limit, cursor=cursor, action=action, actor_id=actor_id, target_id=target_id
    )


@router.get(
    "/usage",
    response_model=UsageReport,
    responses=errors((422, "`validation_error`: a bad date, `to` before `from`, > 366 days"))
    | {200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def read_usage(
    _admin: AdminUser,
    usage: UsageServiceDep,
    start: Annotated[date | None, Query(alias="from", description="first day (UTC)")] = None,
    end: Annotated[date | None, Query(alias="to", description="last day (UTC), included")] = None,
    group_by: Literal["user", "model", "day"] = "user",
    format: Literal["json", "csv"] = "json",
) -> Any:
    """Every account's tokens and cost per user, model or day (default: this month)."""
    report = await usage.instance(start=start, end=end, group_by=group_by)
    if format == "csv":
        return Response(
            as_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="usage.csv"'},
        )
    return report
