"""The sync parts the lifespan owns: the push hub and the tombstone pruner."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.base import utcnow
from app.db.commits import CommitNotifier
from app.repositories.changes import ChangeRepository
from app.services.pushbus import PushBus
from app.services.sync.hub import SyncHub

TOMBSTONE_RETENTION = timedelta(days=30)
PRUNE_EVERY_S = 3600.0
PRUNE_FIRST_AFTER_S = 60.0
PRUNE_USERS_PER_PASS = 1000


class SyncRuntime:
    """Starts and stops the hub and prunes tombstones older than the retention period."""

    def __init__(
        self,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        bus: PushBus,
        commits: CommitNotifier,
    ) -> None:
        self.factory = session_factory
        self.hub = SyncHub(bus=bus)
        self.hub.install(commits)
        self._pruner: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the periodic pruning (the hub rides on the lifespan's push bus)."""
        self._pruner = asyncio.create_task(self._prune_loop(), name="sync-tombstone-pruner")

    async def aclose(self) -> None:
        """Stop pruning."""
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner

    async def prune(self, *, now: datetime | None = None) -> int:
        """Forget tombstones older than the retention period; returns how many users had some.

        Each user is one short transaction (users row first, like every writer), so pruning
        never holds up chat writes; several workers may prune at once (it is idempotent)."""
        cutoff = (now or utcnow()) - TOMBSTONE_RETENTION
        async with self.factory() as session:
            expired = await ChangeRepository(session).expired_tombstones(
                before=cutoff, limit=PRUNE_USERS_PER_PASS
            )
        for user_id, upto in expired:
            async with self.factory() as session:
                await ChangeRepository(session).prune_tombstones(user_id=user_id, upto=int(upto))
                await session.commit()
        return len(expired)

    async def _prune_loop(self) -> None:
        await asyncio.sleep(PRUNE_FIRST_AFTER_S)
        while True:
            try:
                pruned = await self.prune()
                if pruned:
                    logger.info("pruned old sync tombstones of {} user(s)", pruned)
            except Exception as exc:
                logger.warning("pruning sync tombstones failed: {}", exc)
            await asyncio.sleep(PRUNE_EVERY_S)
