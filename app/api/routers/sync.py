"""`/sync`: the change feed, its live push stream, backup export and import."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from app.api.deps import CurrentUser, StreamPrincipal, SyncServiceDep
from app.api.openapi import errors, schema_ref
from app.core.sse import SSE_HEADERS, SSE_MEDIA_TYPE
from app.schemas.common import Text
from app.schemas.sync import BackupDocument, ImportResult, SyncChanges

router = APIRouter(prefix="/sync", tags=["sync"])

_STREAM_DOC: dict[int | str, dict[str, Any]] = {
    "200": {
        "description": "Server-Sent Events: `changed` with `{cursor}` (first one at once), "
        "`: ping` keep-alives; `error` `{code: 'token_revoked'}` last when the session is "
        "revoked; on server shutdown `error` `{code: 'server_shutdown'}` and the stream ends "
        "(reconnect)",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}
_EXPORT_DOC: dict[int | str, dict[str, Any]] = {
    "200": {
        "description": "The backup document `{format: 'vektor-backup', version: 3, exported_at, "
        "user, preferences, conversations: [Conversation], files: [{id, name, content_type, "
        "size, sha256, created_at, data}]}`: every message of each conversation's tree (with "
        "`parent_id`, `reasoning`, `finish_reason`, `attachments`) and its "
        "`current_message_id`; each file's bytes in base64 while the document stays under "
        "MAX_IMPORT_BYTES (`data: null` past it). Import also takes version 2 (no files) and "
        "version 1 (one linear branch).",
        "content": {"application/json": {"schema": {"type": "object"}}},
        "headers": {
            "Content-Disposition": {
                "description": '`attachment; filename="vektor-backup.json"`',
                "schema": {"type": "string"},
                "required": True,
            }
        },
    }
}
_IMPORT_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A document from GET /sync/export",
        "content": {"application/json": {"schema": schema_ref(BackupDocument)}},
    }
}


@router.get(
    "/changes",
    response_model=SyncChanges,
    responses=errors((410, "`resync_required`: drop the local copy and sync without `since`")),
)
async def read_changes(
    user: CurrentUser,
    sync: SyncServiceDep,
    since: Annotated[
        Text | None, Query(max_length=128, description="the `cursor` of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="items per page")] = 200,
) -> Any:
    """What changed since a cursor (everything without one); 410 means resync from scratch."""
    return await sync.changes(user=user, since=since, limit=limit)


@router.get("/stream", response_class=StreamingResponse, responses=_STREAM_DOC)
async def stream_changes(principal: StreamPrincipal, sync: SyncServiceDep) -> StreamingResponse:
    """Live `changed` events whenever the user's data changes on any device or worker."""
    return StreamingResponse(
        sync.stream(principal=principal), media_type=SSE_MEDIA_TYPE, headers=SSE_HEADERS
    )


@router.get("/export", response_class=StreamingResponse, responses=_EXPORT_DOC)
async def export_backup(user: CurrentUser, sync: SyncServiceDep) -> StreamingResponse:
    """The whole account as one versioned JSON document (streamed)."""
    return StreamingResponse(
        sync.export(user=user),
        media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="vektor-backup.json"'},
    )


@router.post(
    "/import",
    response_model=ImportResult,
    openapi_extra=_IMPORT_DOC,
    responses=errors(
        (409, "`import_conflict`: a concurrent change collided; try again"),
        413,
        (422, "`invalid_backup`: the path of the bad field"),
    ),
)
async def import_backup(
    request: Request,
    user: CurrentUser,
    sync: SyncServiceDep,
    content_length: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Any:
    """Restore a backup into this account (idempotent; all or nothing)."""
    return await sync.import_backup(
        user=user, body=request.stream(), declared_length=content_length
    )
