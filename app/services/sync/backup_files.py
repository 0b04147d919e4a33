"""The files of a backup (version 3): base64 inside the JSON document.

Export: each file's bytes are read and written one at a time (memory: one file), while the
whole document stays under MAX_IMPORT_BYTES, so every export can be imported again; files
past that cap (or whose bytes are missing) are listed with `data: null`, and messages show
them as deleted after a restore.
Import: every file is decoded and its size and sha256 checked before any is stored; each is
then stored like an upload (type from the bytes, limits, quota; identical bytes the account
already has are reused), and the messages' attachments point at the stored ids.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from anyio import to_thread

from app.core.errors import InvalidInput
from app.models import StoredFile
from app.schemas.sync import BackupDocument
from app.services.files.service import FileService
from app.services.files.storage import ObjectMissing, Storage

FILES_MARGIN = 64 * 1024  # the closing brackets and each file's fields


async def file_docs(
    storage: Storage, rows: list[StoredFile], *, budget: int
) -> AsyncIterator[bytes]:
    """The `files` array's items, comma-separated, bytes included while `budget` lasts."""
    separator = b""
    for row in rows:
        data: str | None = None
        encoded_size = (row.size + 2) // 3 * 4
        if encoded_size + 1024 <= budget:
            try:
                raw = bytearray()
                async for chunk in await storage.open(row.storage_key):
                    raw += chunk
                data = await to_thread.run_sync(_b64, bytes(raw))
            except ObjectMissing:
                data = None
        item = json.dumps(
            {
                "id": str(row.id),
                "name": row.name,
                "content_type": row.content_type,
                "size": row.size,
                "sha256": row.sha256,
                "created_at": row.created_at.isoformat(),
                "data": data,
            }
        ).encode()
        budget -= len(item) + 1
        yield separator + item
        separator = b","


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _decoded(doc: BackupDocument) -> list[tuple[int, bytes]]:
    """(index, bytes) of every file with data, each checked against its size and sha256."""
    out = []
    for index, item in enumerate(doc.files):
        if item.data is None:
            continue
        where = f"files[{index}].data"
        try:
            raw = base64.b64decode(item.data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput(f"{where}: not base64", code="invalid_backup") from exc
        if len(raw) != item.size or hashlib.sha256(raw).hexdigest() != item.sha256:
            raise InvalidInput(
                f"{where}: the bytes do not match the file's size and sha256",
                code="invalid_backup",
            )
        out.append((index, raw))
    return out


async def restore_files(
    doc: BackupDocument, *, user_id: uuid.UUID, files: FileService
) -> dict[uuid.UUID, uuid.UUID]:
    """Store the document's files; {id in the document: id in this account}."""
    if not doc.files:
        return {}
    decoded = await to_thread.run_sync(_decoded, doc)
    placed: dict[uuid.UUID, uuid.UUID] = {}
    for index, raw in decoded:
        item = doc.files[index]
        stored = await files.restore(user_id=user_id, name=item.name, data=raw)
        placed[item.id] = stored.id
    return placed


def placed_attachments(
    attachments: list[Any] | None, placed: dict[uuid.UUID, uuid.UUID]
) -> list[dict[str, Any]] | None:
    """A message's attachments with the ids of the restored files (others keep theirs and
    show as deleted)."""
    if not attachments:
        return None
    out = []
    for attachment in attachments:
        item = attachment.model_dump(mode="json")
        item["id"] = str(placed.get(attachment.id, attachment.id))
        out.append(item)
    return out
