"""Sync use cases: the change feed, the push stream, export and import."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from anyio import to_thread
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.errors import Conflict
from app.core.shutdown import StreamShutdown
from app.models import User
from app.schemas.admin import AuditAction
from app.schemas.sync import ImportResult, SyncChanges
from app.services.admin.audit import NO_AUDIT, Auditor
from app.services.auth import Principal
from app.services.files import FileService, Storage, UploadLimits
from app.services.revocations import SessionRevocations
from app.services.sync.backup_files import restore_files
from app.services.sync.export import export_document
from app.services.sync.feed import read_changes
from app.services.sync.restore import BackupImporter, parse_document, read_limited
from app.services.sync.runtime import SyncRuntime
from app.services.sync.stream import change_signals, change_stream, shutdown_frame


class SyncService:
    """Owns the transaction of each sync use case."""

    def __init__(
        self,
        *,
        session: AsyncSession,
        session_factory: async_sessionmaker[AsyncSession],
        runtime: SyncRuntime,
        revocations: SessionRevocations,
        shutdown: StreamShutdown,
        ping_s: float,
        max_import_bytes: int,
        storage: Storage | None = None,
        upload_limits: UploadLimits | None = None,
        audit: Auditor = NO_AUDIT,
    ) -> None:
        self.session = session
        self.session_factory = session_factory
        self.runtime = runtime  # the lifespan-owned hub and pruner
        self.revocations = revocations
        self.shutdown = shutdown
        self.ping_s = ping_s
        self.max_import_bytes = max_import_bytes
        self.storage = storage
        self.upload_limits = upload_limits
        self.audit = audit

    async def changes(self, *, user: User, since: str | None, limit: int) -> SyncChanges:
        """One page of the user's changes after `since`."""
        return await read_changes(session=self.session, user_id=user.id, since=since, limit=limit)

    def stream(self, *, principal: Principal) -> AsyncIterator[bytes]:
        """`changed` events for the caller until the client disconnects or signs out (or the
        server shuts down: then `error` `server_shutdown` at once, nothing is lost)."""
        signals = change_signals(
            hub=self.runtime.hub,
            revocations=self.revocations,
            factory=self.session_factory,
            principal=principal,
            ping_s=self.ping_s,
        )
        stream = change_stream(user_id=principal.user.id, signals=signals)
        return self.shutdown.guard(stream, terminal=shutdown_frame, at_once=True)

    def export(self, *, user: User) -> AsyncIterator[bytes]:
        """The backup document of the caller's account, streamed."""
        return export_document(
            factory=self.session_factory,
            user_id=user.id,
            storage=self.storage,
            max_bytes=self.max_import_bytes,
        )

    async def import_backup(
        self, *, user: User, body: AsyncIterator[bytes], declared_length: str | None
    ) -> ImportResult:
        """Restore a backup into the caller's account in one transaction."""
        raw = await read_limited(body, limit=self.max_import_bytes, declared=declared_length)
        doc = await to_thread.run_sync(parse_document, raw)
        del raw
        placed: dict[uuid.UUID, uuid.UUID] = {}
        if doc.files and self.storage is not None and self.upload_limits is not None:
            # each file is committed as it is stored (like an upload), before the messages
            async with self.session_factory() as session:
                files = FileService(
                    session=session, storage=self.storage, limits=self.upload_limits
                )
                placed = await restore_files(doc, user_id=user.id, files=files)
        try:
            importer = BackupImporter(session=self.session)
            result = await importer.run(user_id=user.id, doc=doc, files=placed)
            await self.session.commit()
        except IntegrityError as exc:
            await self.session.rollback()
            raise Conflict(
                "The import collided with a concurrent change; try again", code="import_conflict"
            ) from exc
        self.audit.record(
            AuditAction.backup_imported,
            actor_id=user.id,
            target_type="user",
            target_id=user.id,
            details=result.model_dump(),
        )
        return result
