"""Administration bodies: `AdminUser`, its patch, audit events."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, Field, StrictBool

from app.schemas.common import InputModel, NoBoolOrText, ReadModel, Unset, omitted
from app.schemas.user import UserRead

MAX_QUOTA_TOKENS = 2_147_483_647  # the column is a 32-bit integer on PostgreSQL
MAX_QUOTA_COST = 1e12


class AuditAction(StrEnum):
    """What an audit event records (`action` of `GET /admin/audit`)."""

    login = "auth.login"
    login_failed = "auth.login_failed"
    logout = "auth.logout"
    logout_all = "auth.logout_all"
    session_revoked = "auth.session_revoked"
    refresh_reused = "auth.refresh_reused"
    registered = "user.registered"
    password_changed = "user.password_changed"
    account_deleted = "user.deleted"
    backup_imported = "sync.imported"
    admin_user_updated = "admin.user_updated"
    admin_sessions_revoked = "admin.sessions_revoked"
    admin_user_deleted = "admin.user_deleted"
    # for the personal API keys (issue 15): `Auditor.record(AuditAction.api_key_created, ...)`
    api_key_created = "api_key.created"
    api_key_revoked = "api_key.revoked"


class UsageThisMonth(BaseModel):
    """Tokens and cost since the first of the month (UTC)."""

    tokens: int = 0
    cost_usd: float = 0.0


class AdminUserRead(UserRead):
    """`AdminUser`: a user as admins see it."""

    is_active: bool
    last_login_at: datetime | None
    quota_tokens_per_day: int | None = Field(description="null: the QUOTA_TOKENS_PER_DAY default")
    quota_cost_per_month: float | None = Field(
        description="USD; null: the QUOTA_COST_PER_MONTH default"
    )
    usage_this_month: UsageThisMonth = Field(default_factory=UsageThisMonth)


class AdminUserPage(BaseModel):
    """A page of users, newest first."""

    items: list[AdminUserRead]
    next_cursor: str | None = None


QuotaTokens = Annotated[int, Field(ge=0, le=MAX_QUOTA_TOKENS), NoBoolOrText]
QuotaCost = Annotated[float, Field(ge=0, le=MAX_QUOTA_COST, allow_inf_nan=False), NoBoolOrText]


class AdminUserUpdate(InputModel):
    """`PATCH /admin/users/{id}`: the fields sent change; a quota sent as null resets it."""

    is_active: StrictBool | Unset = omitted()
    is_admin: StrictBool | Unset = omitted()
    quota_tokens_per_day: QuotaTokens | None = None
    quota_cost_per_month: QuotaCost | None = None


class AuditEventRead(ReadModel):
    """One audit event."""

    id: uuid.UUID
    at: datetime
    actor_id: uuid.UUID | None
    action: str
    target_type: str | None
    target_id: uuid.UUID | None
    ip: str | None
    user_agent: str | None
    details: dict[str, Any] | None


class AuditEventPage(BaseModel):
    """A page of audit events, newest first."""

    items: list[AuditEventRead]
    next_cursor: str | None = None
