"""`/files`: the `File` shape (API.md v1.1 "Files and attachments")."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.schemas.common import ReadModel


class FileRead(ReadModel):
    """An uploaded file. `content_type` and `kind` come from the bytes, never the client."""

    id: uuid.UUID
    name: str = Field(description="the client's file name, as checked at upload")
    content_type: str
    size: int = Field(description="bytes")
    sha256: str
    kind: Literal["image", "document", "text"]
    pages: int | None = Field(description="PDF pages; null for other files")
    width: int | None = Field(default=None, description="images: pixels")
    height: int | None = Field(default=None, description="images: pixels")
    has_text: bool = Field(
        description="false for images and for documents without a text layer (a scanned PDF)"
    )
    text_chars: int = Field(description="characters of text a model can read from the file")
    created_at: datetime


class FilePage(BaseModel):
    """A page of files, newest first."""

    items: list[FileRead]
    next_cursor: str | None = None


class AttachmentRead(BaseModel):
    """A file sent with a message, as it was then; `deleted` once the file is gone (the
    message keeps its name and kind)."""

    id: uuid.UUID
    name: str
    content_type: str
    kind: Literal["image", "document", "text"]
    size: int | None = None
    pages: int | None = None
    width: int | None = None
    height: int | None = None
    deleted: bool = Field(default=False, description="the file was deleted since")
