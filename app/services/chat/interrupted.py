"""Answers left `streaming` (or `awaiting_approval`) by a process that died (kill -9, OOM,
power loss) are ended; a tool call that still awaited approval stays listed, as not run.

At start-up, after the spool is replayed, every assistant message still `streaming` is
looked at. One whose generation no longer runs anywhere becomes `error` with
`error_code = "interrupted"`, keeping the text of its last checkpoint, under a new sync
change number (devices see it). The rule for "no longer runs anywhere":

- without Redis this process is the only one serving the database (several workers need
  Redis), so a generation that does not run here is gone;
- with Redis, the generation's hash names the process that owns it and every process keeps
  a heartbeat key alive: the generation is gone when its owner's heartbeat has expired. A
  message Redis has no record of is gone too, unless it is younger than REGISTER_GRACE_S
  (its hash may not be written yet). If Redis cannot be asked, nothing is touched.

Messages whose owner still looks alive (a restarted process can come up before the dead
one's heartbeat expires) are looked at again every RECHECK_S until they end or are ended.
Should a process ever be wrong, the damage is bounded: a finished answer's own write
always overwrites the `interrupted` mark (app/repositories/turns.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from loguru import logger

from app.db.availability import is_unavailable
from app.db.base import utcnow
from app.db.direct import DirectDb
from app.db.health import describe
from app.db.writer import TurnWriter
from app.repositories.turns import InterruptUnit, TurnRepository
from app.services.chat.approval_gate import NOT_RUN
from app.services.chat.redis_mirror import HEARTBEAT_TTL_S
from app.services.chat.registry import GenerationRegistry

REGISTER_GRACE_S = 5.0
RECHECK_S = HEARTBEAT_TTL_S + 2.0


class InterruptedAnswers:
    """Finds and ends answers whose generation died with its process."""

    def __init__(
        self,
        *,
        db: DirectDb,
        writer: TurnWriter,
        generations: GenerationRegistry,
        max_generation_s: float,
        busy: Callable[[], set[uuid.UUID]] = set,
        recheck_s: float = RECHECK_S,
        register_grace_s: float = REGISTER_GRACE_S,
    ) -> None:
        self.db, self.writer, self.generations = db, writer, generations
        self.max_generation_s = max_generation_s
        self._busy = busy  # messages this process still has writes for (never touched)
        self.recheck_s = recheck_s
        self.register_grace = timedelta(seconds=register_grace_s)
        self._task: asyncio.Task[None] | None = None

    async def start(self, *, skip: set[uuid.UUID] | frozenset[uuid.UUID] = frozenset()) -> int:
        """Sweep now (before serving); keep looking at undecided ones in the background.

        A database that is down at start-up does not stop the service: the sweep is then
        retried in the background until it gets through."""
        undecided: set[uuid.UUID] | None
        try:
            ended, undecided = await self.sweep(skip=skip)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            logger.warning(
                "cannot look for interrupted answers now ({}); trying again in the background",
                describe(exc),
            )
            ended, undecided = 0, None
        if undecided is None or undecided:
            self._task = asyncio.create_task(
                self._recheck(undecided, skip=set(skip)), name="interrupted-answers"
            )
        return ended

    async def aclose(self) -> None:
        """Stop looking."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def sweep(
        self,
        *,
        skip: set[uuid.UUID] | frozenset[uuid.UUID] = frozenset(),
        only: set[uuid.UUID] | None = None,
    ) -> tuple[int, set[uuid.UUID]]:
        """End what is gone; `(how many were ended, ids still undecided)`."""
        if only is not None and not only:
            return 0, set()
        rows = await self.db.read(lambda conn: TurnRepository(conn).in_progress(among=only))
        busy = self._busy()
        candidates = [row for row in rows if row[0] not in skip and row[0] not in busy]
        if not candidates:
            return 0, set()
        states = await self.generations.states([row[0] for row in candidates])
        if states is None:
            return 0, {row[0] for row in candidates}
        now = utcnow()
        ended, undecided = 0, set()
        for message_id, user_id, created_at in candidates:
            state = states.get(message_id, "unknown")
            young = _age(now, created_at) < self.register_grace
            if state == "running" or (state == "unknown" and young):
                undecided.add(message_id)
                continue
            await self.writer.submit(
                InterruptUnit(
                    user_id=user_id, message_id=message_id, now=now, not_run=NOT_RUN["interrupted"]
                ),
                user_id=user_id,
            )
            ended += 1
        if ended:
            logger.warning(
                "{} answer(s) left streaming by a process that stopped were marked "
                "error/interrupted (their last saved text kept)",
                ended,
            )
        return ended, undecided

    async def _recheck(self, undecided: set[uuid.UUID] | None, *, skip: set[uuid.UUID]) -> None:
        """Look again every `recheck_s`: at everything (None) until a sweep gets through,
        then at the undecided ones, for as long as a generation can run."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_generation_s + 2 * self.recheck_s
        while undecided is None or (undecided and loop.time() < deadline):
            await asyncio.sleep(self.recheck_s)
            try:
                _, found = await self.sweep(skip=skip, only=undecided)
            except Exception as exc:  # the database or Redis is away: try again later
                logger.warning("checking for interrupted answers failed: {}", describe(exc))
                continue
            if undecided is None:
                deadline = loop.time() + self.max_generation_s + 2 * self.recheck_s
            undecided = found


def _age(now: datetime, created_at: datetime) -> timedelta:
    if created_at.tzinfo is None:  # SQLite hands back naive UTC
        created_at = created_at.replace(tzinfo=now.tzinfo)
    return now - created_at
