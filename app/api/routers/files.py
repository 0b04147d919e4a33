"""`/files`: upload, list, read, download, delete (API.md v1.1 "Files and attachments")."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect

from app.api.deps import CurrentUser, FileServiceDep
from app.api.openapi import errors
from app.core.errors import BadRequest
from app.schemas.common import Text
from app.schemas.files import FilePage, FileRead
from app.services.files.sniff import DOWNLOAD_TYPES

router = APIRouter(prefix="/files", tags=["files"])

_UPLOAD_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            }
        },
    }
}
_CONTENT_DOC: dict[int | str, dict[str, Any]] = {
    "200": {
        "description": "The original bytes, as the content type decided at upload; always "
        "`Content-Disposition: attachment` and `X-Content-Type-Options: nosniff`",
        "content": {
            media: {"schema": {"type": "string", "format": "binary"}} for media in DOWNLOAD_TYPES
        },
        "headers": {
            "Content-Disposition": {
                "description": "`attachment; filename=\"<ASCII name>\"; filename*=UTF-8''<name>`",
                "schema": {"type": "string"},
                "required": True,
            }
        },
    }
}
_STORE_DOWN = (
    503,
    "`database_unavailable`: the database does not answer; `storage_unavailable`: the file "
    "store (disk or S3) does not answer",
)
_ASCII_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]")


async def request_body(request: Request) -> AsyncIterator[bytes]:
    """The body as it arrives; a client that hangs up mid-upload is a 400 (nothing is kept),
    not a 500 with a traceback in error.log."""
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect as exc:
        raise BadRequest("The client went away before the upload ended") from exc


def content_disposition(name: str) -> str:
    """`attachment` with an ASCII fallback name and the exact name (RFC 6266 / 5987)."""
    fallback = _ASCII_UNSAFE.sub("_", name)[:150] or "file"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=FileRead,
    openapi_extra=_UPLOAD_DOC,
    responses={
        200: {"model": FileRead, "description": "The same bytes were uploaded before: that file"},
        **errors(
            (400, "`bad_request`: not multipart/form-data, or a body that cannot be read"),
            (
                413,
                "`file_too_large`: over MAX_UPLOAD_BYTES, or unpacking past a limit (pixels, "
                "archive size or ratio, PDF pages); `storage_quota_exceeded`: over "
                "USER_STORAGE_QUOTA_BYTES",
            ),
            (415, "`unsupported_file_type`: the bytes are none of the supported types"),
            (
                422,
                "`validation_error`: no file in the field `file`; `invalid_file_name`; "
                "`unreadable_file`: the bytes claim a type but cannot be read as it",
            ),
            _STORE_DOWN,
        ),
    },
)
async def upload_file(
    request: Request,
    response: Response,
    user: CurrentUser,
    files: FileServiceDep,
    content_length: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Any:
    """Upload a file (multipart field `file`); its type is decided from the bytes."""
    stored, created = await files.upload(
        user_id=user.id,
        body=request_body(request),
        content_type=request.headers.get("content-type"),
        declared_length=content_length,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return stored


@router.get("", response_model=FilePage, responses=errors((400, "`invalid_cursor`: start again")))
async def list_files(
    user: CurrentUser,
    files: FileServiceDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[Text | None, Query(max_length=512)] = None,
) -> Any:
    """The user's files, newest first."""
    return await files.list(user_id=user.id, limit=limit, cursor=cursor)


@router.get("/{file_id}", response_model=FileRead)
async def read_file(file_id: uuid.UUID, user: CurrentUser, files: FileServiceDep) -> Any:
    """One file's facts."""
    return await files.get(user_id=user.id, file_id=file_id)


@router.get(
    "/{file_id}/content",
    response_class=StreamingResponse,
    responses={**_CONTENT_DOC, **errors(_STORE_DOWN)},
)
async def download_file(
    file_id: uuid.UUID, user: CurrentUser, files: FileServiceDep
) -> StreamingResponse:
    """The original bytes, as a download (never rendered by a browser)."""
    stored, chunks = await files.content(user_id=user.id, file_id=file_id)
    return StreamingResponse(
        chunks,
        media_type=stored.content_type,
        headers={
            "Content-Disposition": content_disposition(stored.name),
            "Content-Length": str(stored.size),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "Cache-Control": "private, no-store",
        },
    )


@router.delete("/{file_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_file(file_id: uuid.UUID, user: CurrentUser, files: FileServiceDep) -> Response:
    """Delete the file and its stored bytes."""
    await files.delete(user_id=user.id, file_id=file_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
