"""Personal API key bodies (`/users/me/api-keys`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field

from app.schemas.common import InputModel, NoBoolOrText, ReadModel, Text

MAX_KEY_DAYS = 3650


class ApiKeyCreate(InputModel):
    """`POST /users/me/api-keys`: a name to recognise the key by, and an optional lifetime."""

    name: Annotated[Text, Field(min_length=1, max_length=100)]
    expires_in_days: Annotated[int, Field(ge=1, le=MAX_KEY_DAYS), NoBoolOrText] | None = None


class ApiKeyRead(ReadModel):
    """A key as its owner sees it in lists: never the key, never its hash."""

    id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None


class ApiKeyCreated(ReadModel):
    """A new key: `key` is shown this once and never again."""

    id: uuid.UUID
    name: str
    prefix: str
    key: str
    created_at: datetime
    expires_at: datetime | None
