"""User and preference bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, EmailStr, Field, StrictBool

from app.schemas.auth import NewPassword, Username
from app.schemas.common import HttpUrlText, InputModel, JsonObject, ReadModel, Text, Unset, omitted


class UserRead(ReadModel):
    """A user as clients see it (never a password hash)."""

    id: uuid.UUID
    email: str
    username: str
    full_name: str | None
    avatar_url: str | None
    is_admin: bool
    created_at: datetime
    updated_at: datetime


class UserUpdate(InputModel):
    """`PUT /users/me`: any subset of the editable fields."""

    email: EmailStr | Unset = omitted()
    username: Username | Unset = omitted()
    full_name: Annotated[Text, Field(max_length=200)] | None = None
    avatar_url: Annotated[HttpUrlText, Field(max_length=2048)] | None = None


class PasswordChange(InputModel):
    """`POST /users/change-password`."""

    current_password: Annotated[Text, Field(min_length=1, max_length=1024)]
    new_password: NewPassword


class AccountDelete(InputModel):
    """`DELETE /users/me` needs the password."""

    password: Annotated[Text, Field(min_length=1, max_length=1024)]


# a tool as the model calls it, `<server>__<tool>` (app/services/tools/naming.py)
QualifiedToolName = Annotated[
    str, Field(min_length=4, max_length=64, pattern=r"^[a-zA-Z0-9_-]+__[a-zA-Z0-9_-]+$")
]


class NotificationPrefs(BaseModel):
    """Notification switches."""

    email: StrictBool = True
    push: StrictBool = True


class NotificationPrefsUpdate(InputModel):
    """Partial notification switches (merged into the stored ones)."""

    email: StrictBool | None = None
    push: StrictBool | None = None


class Preferences(BaseModel):
    """The whole preference document with its defaults."""

    theme: Literal["system", "light", "dark"] = "system"
    language: str = "en"
    notifications: NotificationPrefs = Field(default_factory=NotificationPrefs)
    default_model: str | None = None
    system_prompt: str | None = None
    enabled_mcp_servers: list[str] | None = None
    # tools that run without asking even where their server's `approval` says to ask
    auto_approve_tools: list[str] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)


class PreferencesUpdate(InputModel):
    """`PUT /users/preferences`: fields sent replace the stored ones; `notifications` merges."""

    theme: Literal["system", "light", "dark"] | Unset = omitted()
    language: Annotated[Text, Field(min_length=2, max_length=35)] | Unset = omitted()
    notifications: NotificationPrefsUpdate | Unset = omitted()
    default_model: Annotated[Text, Field(max_length=200)] | None = None
    system_prompt: Annotated[Text, Field(max_length=32000)] | None = None
    enabled_mcp_servers: list[Annotated[Text, Field(max_length=200)]] | None = None
    auto_approve_tools: Annotated[list[QualifiedToolName], Field(max_length=500)] | None = None
    extra: JsonObject | None = None
