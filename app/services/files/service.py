"""File use cases: upload, list, read, download, delete, and the user's storage figure."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from anyio import to_thread
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import BadRequest, NotFound, PayloadTooLarge, ServiceUnavailable, Unauthorized
from app.models import StoredFile
from app.repositories.changes import ChangeRepository
from app.repositories.files import FileRepository
from app.schemas.files import FilePage, FileRead
from app.services.files.extract import Inspection, inspect
from app.services.files.receive import Received, UploadReader, too_large
from app.services.files.storage import ObjectMissing, Storage, StorageUnavailable


@dataclass(frozen=True)
class UploadLimits:
    """MAX_UPLOAD_BYTES, USER_STORAGE_QUOTA_BYTES and where uploads are received."""

    max_bytes: int
    quota_bytes: int
    temp_dir: Path
    # uploads checked and stored at once in this worker: the checks are CPU work in threads
    # that share the GIL with the event loop, so a burst of them queues instead of starving it
    checking: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))


def encode_cursor(stored: StoredFile) -> str:
    """An opaque keyset cursor after this file."""
    raw = json.dumps([stored.created_at.isoformat(), str(stored.id)])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Parse a cursor from `encode_cursor`; 400 `invalid_cursor` otherwise."""
    try:
        stamp, ident = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        moment = datetime.fromisoformat(stamp)
        moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
        return moment, uuid.UUID(ident)
    except (ValueError, TypeError, OverflowError, binascii.Error) as exc:
        raise BadRequest("Invalid cursor; start again without one", code="invalid_cursor") from exc


def storage_error(exc: StorageUnavailable) -> ServiceUnavailable:
    """The 503 of a store that does not answer."""
    logger.warning("file storage failed: {}", exc)
    return ServiceUnavailable("File storage is unavailable; try again", code="storage_unavailable")


def quota_exceeded(quota: int) -> PayloadTooLarge:
    """The 413 of an upload that would take the user over USER_STORAGE_QUOTA_BYTES."""
    return PayloadTooLarge(
        f"The file would exceed your storage quota of {quota} bytes",
        code="storage_quota_exceeded",
    )


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _write_new(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


class FileService:
    """Owns the transaction of each file use case; bytes go to `storage`."""

    def __init__(self, *, session: AsyncSession, storage: Storage, limits: UploadLimits) -> None:
        self.session = session
        self.storage = storage
        self.limits = limits
        self.files = FileRepository(session)

    async def upload(
        self,
        *,
        user_id: uuid.UUID,
        body: AsyncIterator[bytes],
        content_type: str | None,
        declared_length: str | None,
    ) -> tuple[StoredFile, bool]:
        """Receive, check, extract and store an upload; (file, created). Identical bytes the
        user already has give the existing file (created False) and store nothing."""
        reader = UploadReader(max_bytes=self.limits.max_bytes, temp_dir=self.limits.temp_dir)
        received = await reader.read(body, content_type=content_type, declared=declared_length)
        return await self._accept(user_id=user_id, received=received)

    async def restore(self, *, user_id: uuid.UUID, name: str, data: bytes) -> StoredFile:
        """A file from a backup, checked like an upload (type, limits, quota); identical
        bytes the user already has give the existing file."""
        if len(data) > self.limits.max_bytes:
            raise too_large(self.limits.max_bytes)
        path = self.limits.temp_dir / f"restore-{uuid.uuid4()}"
        await to_thread.run_sync(partial(_write_new, path, data))
        received = Received(
            path=path, size=len(data), sha256=hashlib.sha256(data).hexdigest(), name=name
        )
        stored, _ = await self._accept(user_id=user_id, received=received)
        return stored

    async def _accept(self, *, user_id: uuid.UUID, received: Received) -> tuple[StoredFile, bool]:
        """Check and store a received file (its temporary copy is removed either way)."""
        try:
            existing = await self.files.get_by_sha256(user_id=user_id, sha256=received.sha256)
            used = await self.files.storage_bytes(user_id=user_id)
            await self.session.close()  # no connection held while the file is read
            if existing is not None:
                return existing, False
            if used + received.size > self.limits.quota_bytes:
                raise quota_exceeded(self.limits.quota_bytes)
            async with self.limits.checking:
                found = await to_thread.run_sync(
                    partial(inspect, received.path, name=received.name)
                )
                return await self._store(user_id=user_id, received=received, found=found)
        finally:
            await to_thread.run_sync(partial(received.path.unlink, missing_ok=True))

    async def _store(
        self, *, user_id: uuid.UUID, received: Received, found: Inspection
    ) -> tuple[StoredFile, bool]:
        """Put the objects, then insert the row under the user's lock (quota and duplicates
        are decided there, so two uploads at once cannot both pass); undo the objects when
        the row is not written."""
        file_id = uuid.uuid4()
        key = f"{user_id}/{file_id}"
        text_key = f"{key}.txt" if found.text is not None else None
        written: list[str] = []
        try:
            await self.storage.put_path(key, received.path)
            written.append(key)
            if text_key is not None and found.text is not None:
                await self.storage.put(text_key, _one_chunk(found.text.encode()))
                written.append(text_key)
            seq = await ChangeRepository(self.session).allocate(user_id=user_id)  # user lock
            if not seq:
                raise Unauthorized("Session no longer exists", code="token_revoked")
            existing = await self.files.get_by_sha256(user_id=user_id, sha256=received.sha256)
            if existing is not None:  # the same bytes arrived at once from another request
                await self.session.close()  # rolls back; `existing` keeps its loaded values
                await self._remove(written)
                return existing, False
            used = await self.files.storage_bytes(user_id=user_id)
            if used + received.size > self.limits.quota_bytes:
                raise quota_exceeded(self.limits.quota_bytes)
            stored = StoredFile(
                id=file_id,
                user_id=user_id,
                name=received.name,
                content_type=found.content_type,
                size=received.size,
                sha256=received.sha256,
                kind=found.kind,
                pages=found.pages,
                width=found.width,
                height=found.height,
                storage_key=key,
                text_key=text_key,
                text_chars=found.text_chars,
                has_text=found.has_text,
                change_seq=seq,
            )
            self.files.add(stored)
            await self.session.commit()
        except StorageUnavailable as exc:
            await self.session.rollback()
            await self._remove(written)
            raise storage_error(exc) from exc
        except BaseException:
            await self.session.rollback()
            await self._remove(written)
            raise
        logger.info("file stored", file_id=str(file_id), kind=found.kind, size=received.size)
        return stored, True

    async def _remove(self, keys: list[str]) -> None:
        """Delete objects; a failure is logged (an orphan is removed with the account)."""
        for key in keys:
            try:
                await self.storage.delete(key)
            except StorageUnavailable as exc:
                logger.warning("could not delete a stored object: {}", exc)

    async def list(self, *, user_id: uuid.UUID, limit: int, cursor: str | None) -> FilePage:
        """A page of the user's files, newest first."""
        rows = await self.files.list_page(
            user_id=user_id, limit=limit + 1, after=decode_cursor(cursor) if cursor else None
        )
        page, more = rows[:limit], len(rows) > limit
        return FilePage(
            items=[FileRead.model_validate(row) for row in page],
            next_cursor=encode_cursor(page[-1]) if more and page else None,
        )

    async def get(self, *, user_id: uuid.UUID, file_id: uuid.UUID) -> StoredFile:
        """One of the user's files; 404 for a missing or foreign id."""
        stored = await self.files.get_for_user(user_id=user_id, file_id=file_id)
        if stored is None:
            raise NotFound("File not found")
        return stored

    async def content(
        self, *, user_id: uuid.UUID, file_id: uuid.UUID
    ) -> tuple[StoredFile, AsyncIterator[bytes]]:
        """The file and its original bytes (opened before the response starts)."""
        stored = await self.get(user_id=user_id, file_id=file_id)
        await self.session.close()  # the download must not hold a connection
        try:
            return stored, await self.storage.open(stored.storage_key)
        except ObjectMissing as exc:
            logger.warning("a file's stored object is missing", file_id=str(file_id))
            raise NotFound("File not found") from exc
        except StorageUnavailable as exc:
            raise storage_error(exc) from exc

    async def text(self, *, user_id: uuid.UUID, file_id: uuid.UUID) -> str:
        """What a model can read of the file: a document's extracted text, a text file's
        own text, "" for an image (for the chat task that sends attachments)."""
        stored = await self.get(user_id=user_id, file_id=file_id)
        await self.session.close()
        key = stored.text_key or (stored.storage_key if stored.kind == "text" else None)
        if key is None:
            return ""
        try:
            data = bytearray()
            async for chunk in await self.storage.open(key):
                data += chunk
        except ObjectMissing as exc:
            raise NotFound("File not found") from exc
        except StorageUnavailable as exc:
            raise storage_error(exc) from exc
        return data.decode("utf-8-sig")

    async def delete(self, *, user_id: uuid.UUID, file_id: uuid.UUID) -> None:
        """Delete the row, then its stored objects (a failure there leaves an orphan that
        the account's deletion removes, never a row without its bytes)."""
        stored = await self.get(user_id=user_id, file_id=file_id)
        keys = [stored.storage_key, *([stored.text_key] if stored.text_key else [])]
        await self.files.delete_for_user(user_id=user_id, file_id=file_id)
        await self.session.commit()
        await self._remove(keys)

    async def read_all(self, stored: StoredFile) -> bytes:
        """A file's original bytes (for a backup)."""
        data = bytearray()
        try:
            async for chunk in await self.storage.open(stored.storage_key):
                data += chunk
        except StorageUnavailable as exc:
            raise storage_error(exc) from exc
        return bytes(data)

    async def storage_bytes(self, *, user_id: uuid.UUID) -> int:
        """The total size of the user's files (what counts against the quota)."""
        return await self.files.storage_bytes(user_id=user_id)
