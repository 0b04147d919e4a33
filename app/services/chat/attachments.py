"""A turn's attachments: checked when the turn starts, loaded into model parts before the
model is called.

A user message stores its files as a snapshot (`{id, name, content_type, kind, ...}`) so a
deleted file keeps its name in history. The model sees images as image parts (resized per
provider, app/services/files/prepare.py) and documents and text files as their text, with
the file name, cut to fit the context window. A turn without attachments reads nothing.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from anyio import to_thread
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.errors import AppError, BadRequest, NotFound
from app.models import StoredFile
from app.repositories.files import FileRepository
from app.services.files.prepare import PREPARED, Prepared, limit_for, prepare_image
from app.services.files.service import FileService, UploadLimits, storage_error
from app.services.files.sniff import image_type
from app.services.files.storage import ObjectMissing, Storage, StorageUnavailable
from app.services.llm import ChatMessage, ModelConfig
from app.services.llm.base import FileRef, ImagePart, Part, TextPart
from app.services.llm.context import CHARS_PER_TOKEN
from app.services.tools.types import ToolImage

KeepImage = Callable[[str, ToolImage], Awaitable[dict[str, Any] | None]]

DOCUMENT_SHARE = 0.5  # of the context left after the answer's reserve, for all documents
MIN_DOCUMENT_CHARS = 1000


async def owned_files(
    session: AsyncSession, *, user_id: uuid.UUID, file_ids: list[uuid.UUID]
) -> list[dict[str, Any]]:
    """Snapshots of the user's files, in the order given (repeats dropped); 404 when one
    is missing, deleted or another user's."""
    unique = list(dict.fromkeys(file_ids))
    rows = await FileRepository(session).get_many(user_id=user_id, file_ids=unique)
    missing = [str(ident) for ident in unique if ident not in rows]
    if missing:
        raise NotFound(f"File not found: {missing[0]}")
    return [snapshot(rows[ident]) for ident in unique]


def snapshot(stored: StoredFile) -> dict[str, Any]:
    """What a message keeps of a file (JSON)."""
    return {
        "id": str(stored.id),
        "name": stored.name,
        "content_type": stored.content_type,
        "kind": stored.kind,
        "size": stored.size,
        "pages": stored.pages,
        "width": stored.width,
        "height": stored.height,
    }


def refs(attachments: list[dict[str, Any]] | None) -> list[Part] | None:
    """A stored message's attachments as parts still to load."""
    if not attachments:
        return None
    return [
        FileRef(str(a["id"]), str(a.get("name", "")), str(a.get("kind", ""))) for a in attachments
    ]


async def mark_deleted(
    session: AsyncSession, *, user_id: uuid.UUID, messages: list[dict[str, Any]]
) -> None:
    """Set `deleted` on the attachments (of these message dicts) whose file is gone."""
    ids = {uuid.UUID(str(a["id"])) for m in messages for a in (m.get("attachments") or ())}
    if not ids:
        return
    alive = await FileRepository(session).existing_ids(user_id=user_id, file_ids=list(ids))
    for message in messages:
        if message.get("attachments"):
            message["attachments"] = [
                {**a, "deleted": uuid.UUID(str(a["id"])) not in alive}
                for a in message["attachments"]
            ]


class AttachmentLoader:
    """Turns `FileRef` parts into what the model reads (one query, then storage reads)."""

    def __init__(
        self, *, session_factory: async_sessionmaker[AsyncSession], storage: Storage | None
    ) -> None:
        self.session_factory = session_factory
        self.storage = storage

    async def load(
        self,
        messages: list[ChatMessage],
        *,
        user_id: uuid.UUID,
        model: ModelConfig,
        reserve_output: int,
    ) -> list[ChatMessage]:
        """`messages` with every attachment loaded; 400 `model_cannot_see_images` when the
        current turn has an image and the model has no vision (older images become a note)."""
        found = [p for m in messages for p in (m.parts or ()) if isinstance(p, FileRef)]
        if not found:
            return messages
        current = max((i for i, m in enumerate(messages) if m.role == "user"), default=0)
        if not model.supports_vision and any(
            isinstance(p, FileRef) and p.kind == "image"
            for m in messages[current:]
            for p in (m.parts or ())
        ):
            raise BadRequest(
                f"Model '{model.id}' cannot see images; choose a model with vision",
                code="model_cannot_see_images",
            )
        async with self.session_factory() as session:
            rows = await FileRepository(session).get_many(
                user_id=user_id, file_ids=[uuid.UUID(p.file_id) for p in found]
            )
        documents = sum(1 for p in found if p.kind != "image") or 1
        budget = int((model.context_window - reserve_output) * CHARS_PER_TOKEN * DOCUMENT_SHARE)
        share = max(MIN_DOCUMENT_CHARS, budget // documents)
        out: list[ChatMessage] = []
        for message in messages:
            if not message.parts:
                out.append(message)
                continue
            parts = [
                await self._part(p, rows.get(uuid.UUID(p.file_id)), model, share)
                if isinstance(p, FileRef)
                else p
                for p in message.parts
            ]
            out.append(dataclasses.replace(message, parts=parts))
        return out

    async def _part(
        self, ref: FileRef, row: StoredFile | None, model: ModelConfig, share: int
    ) -> Part:
        if row is None:
            return TextPart(f"[Attached file {ref.name!r} was deleted]", f"{ref.name} (deleted)")
        if row.kind == "image":
            summary = f"{row.name} image {row.width}x{row.height}"
            if not model.supports_vision:
                return TextPart(f"[Image {row.name!r}: this model cannot see images]", summary)
            prepared = await self._image(row, model)
            return ImagePart(
                row.name, prepared.media_type, prepared.data, row.width or 0, row.height or 0
            )
        if not row.has_text or row.text_chars == 0:
            pages = f"{row.pages} pages" if row.pages else "no pages"
            return TextPart(
                f"[Attached file {row.name!r} ({pages}) has no text layer (a scanned document?): "
                "its text cannot be read]",
                f"{row.name} {pages}, no text",
            )
        text = (await self._read(row.text_key or row.storage_key)).decode("utf-8-sig")
        total = len(text)
        if total > share:
            text = text[:share] + f"\n[cut: {share:,} of {total:,} characters]"
        pages = f"{row.pages} pages, " if row.pages else ""
        return TextPart(
            f"[Attached file {row.name!r}]\n{text}\n[End of {row.name!r}]",
            f"{row.name} {pages}{total:,} characters of text",
        )

    async def _image(self, row: StoredFile, model: ModelConfig) -> Prepared:
        if model.provider == "echo":  # echo reports the size only: no bytes needed
            return Prepared(b"", row.content_type)
        side, cap = limit_for(model.provider)
        key = (row.sha256, side)
        cached = PREPARED.get(key)
        if cached is not None:
            return cached
        raw = await self._read(row.storage_key)
        prepared = await to_thread.run_sync(
            partial(prepare_image, raw, max_side=side, max_bytes=cap)
        )
        PREPARED.put(key, prepared)
        return prepared

    async def _read(self, key: str) -> bytes:
        if self.storage is None:
            raise RuntimeError("no file storage configured")
        data = bytearray()
        try:
            async for chunk in await self.storage.open(key):
                data += chunk
        except ObjectMissing as exc:
            raise NotFound("An attached file's content is missing") from exc
        except StorageUnavailable as exc:
            raise storage_error(exc) from exc
        return bytes(data)


class ToolImageKeeper:
    """Stores images that tools returned as files of the user (checked like uploads)."""

    def __init__(
        self,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        storage: Storage | None,
        limits: UploadLimits | None,
    ) -> None:
        self.session_factory = session_factory
        self.storage = storage
        self.limits = limits

    def for_user(self, user_id: uuid.UUID) -> KeepImage | None:
        """The `keep_image` of one user's turn (None without file storage)."""
        if self.storage is None or self.limits is None:
            return None
        return partial(self.keep, user_id)

    async def keep(self, user_id: uuid.UUID, name: str, image: ToolImage) -> dict[str, Any] | None:
        """The stored image's attachment snapshot; None when it is refused (not an image
        we take, over a limit or the quota, storage down): the text then describes it."""
        assert self.storage is not None and self.limits is not None
        if image_type(image.data[:64]) is None:
            return None  # not image bytes, whatever the tool said: never stored as a file
        try:
            async with self.session_factory() as session:
                files = FileService(session=session, storage=self.storage, limits=self.limits)
                stored = await files.restore(user_id=user_id, name=name, data=image.data)
        except AppError as exc:
            logger.info("a tool's image was not kept: {}", exc)
            return None
        return snapshot(stored)  # the bytes decide its kind, as for an upload
