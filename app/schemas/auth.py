"""Auth request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    EmailStr,
    Field,
    StrictBool,
    StringConstraints,
    model_validator,
)

from app.core.security import password_too_long
from app.schemas.common import InputModel, ReadModel, Text

USERNAME_PATTERN = r"^[A-Za-z0-9_.-]{3,32}$"


def _check_password(value: str) -> str:
    if password_too_long(value):
        raise ValueError("password must be at most 72 bytes in UTF-8")
    return value


MAX_PASSWORD_BYTES = 72  # bcrypt reads no further
NewPassword = Annotated[
    Text,
    # JSON Schema counts characters: 72 of them can still be more than 72 bytes
    Field(
        min_length=8,
        max_length=MAX_PASSWORD_BYTES,
        description=f"8 characters or more, at most {MAX_PASSWORD_BYTES} bytes in UTF-8",
    ),
    AfterValidator(_check_password),
]
Username = Annotated[str, StringConstraints(pattern=USERNAME_PATTERN)]


class RegisterRequest(InputModel):
    """`POST /auth/register`."""

    email: EmailStr
    username: Username
    password: NewPassword
    full_name: Annotated[Text, Field(max_length=200)] | None = None


# the username (which may hold the email) or the email must be a string; the other may be absent
IDENTIFIER_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"required": [name], "properties": {name: {"type": "string"}}}
        for name in ("username", "email")
    ]
}


class LoginRequest(InputModel):
    """JSON login: `username` (which may hold the email) or `email`, and the password."""

    model_config = ConfigDict(json_schema_extra=IDENTIFIER_SCHEMA)

    username: Annotated[Text, Field(min_length=1, max_length=320)] | None = None
    email: Annotated[Text, Field(min_length=1, max_length=320)] | None = None
    password: Annotated[Text, Field(min_length=1, max_length=1024)]

    @model_validator(mode="after")
    def _one_identifier(self) -> LoginRequest:
        if not (self.username or self.email):
            raise ValueError("send username or email")
        return self

    @property
    def identifier(self) -> str:
        """The account name to look up (username or email)."""
        return (self.username or self.email or "").strip().lower()


class RefreshRequest(InputModel):
    """`POST /auth/refresh`."""

    refresh_token: Annotated[Text, Field(min_length=1, max_length=4096)]


class LogoutRequest(InputModel):
    """`POST /auth/logout` (body optional)."""

    all_devices: StrictBool = False


class TokenPair(ReadModel):
    """A fresh access token and the refresh token that replaces the spent one."""

    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    refresh_expires_in: int


class StreamTicketRead(ReadModel):
    """A single-use ticket that opens one SSE stream without an `Authorization` header."""

    ticket: str = Field(description="pass as `?ticket=` to GET /chat/stream/{id} or /sync/stream")
    expires_in: int = Field(description="seconds the ticket stays valid (60)")


class SessionRead(ReadModel):
    """One device session."""

    id: uuid.UUID
    user_agent: str | None
    ip: str | None
    created_at: datetime
    last_used_at: datetime
    current: bool = False
