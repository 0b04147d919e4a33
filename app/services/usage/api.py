"""Usage of stateless /v1 answers (no message row holds it): one row per answer, written in
the background when the answer ends (never a write per token, never on the answer's path)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.base import utcnow
from app.models import ApiUsage


class ApiUsageLog:
    """Records the usage of answers that are not saved as messages (owned by the lifespan)."""

    def __init__(self, *, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self.session_factory = session_factory
        self._writing: set[asyncio.Task[None]] = set()

    def record(
        self,
        *,
        user_id: uuid.UUID,
        api_key_id: uuid.UUID | None,
        model_id: str,
        usage: dict[str, Any],
    ) -> None:
        """Write one usage row in the background (never raises)."""
        cost = usage.get("cost_usd")
        row = ApiUsage(
            user_id=user_id,
            api_key_id=api_key_id,
            model=model_id,
            created_at=utcnow(),
            input_tokens=int(usage.get("input_tokens") or 0),
            output_tokens=int(usage.get("output_tokens") or 0),
            cached_input_tokens=int(usage.get("cached_input_tokens") or 0),
            cost_usd=float(cost) if isinstance(cost, int | float) else None,
        )
        task = asyncio.create_task(self._write(row))
        self._writing.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(self._writing.discard)

    async def _write(self, row: ApiUsage) -> None:
        try:
            async with self.session_factory() as session:
                session.add(row)
                await session.commit()
        except Exception as exc:  # the answer was sent; only the report misses it
            logger.opt(exception=exc).error("could not record a /v1 answer's usage")

    async def drain(self) -> None:
        """Wait for the rows being written (shutdown, tests)."""
        while self._writing:
            await asyncio.gather(*list(self._writing), return_exceptions=True)
