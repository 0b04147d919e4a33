"""Turn writes the database could not take: retried with backoff, spooled, replayed.

A turn's write is tried once, inline, as before. If the database is unavailable (down,
frozen, locked: `is_unavailable`) the write is held here instead of failing the turn; the
stream goes on and ends with `done` as usual. A background task retries held writes with
exponential backoff and jitter (and at once when the database watcher sees it come back),
each message's writes in order (begin → checkpoint → finish; a newer checkpoint or the
finish replaces an older checkpoint). A message still unsaved `TURN_WRITE_RETRY_SECONDS`
after its first failure, or at shutdown, is spooled to `DATA_DIR/spool/` (app/services/chat/
spool.py) and replayed at the next start, and whenever the database comes back.
Nothing here runs per token: only a turn's begin, checkpoints (every 5 s) and finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from anyio import to_thread
from loguru import logger

from app.db.availability import is_unavailable
from app.db.health import DatabaseHealth, describe
from app.db.writer import TurnWriter
from app.repositories.turn_writes import CheckpointWrite, TurnWrite
from app.repositories.turns import TurnUnit
from app.services.chat.spool import Spool, decode

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 30.0


def retry_delay(failures: int, jitter: float) -> float:
    """Seconds before the next try after `failures` failed rounds: doubling from
    FIRST_DELAY_S up to MAX_DELAY_S, of which a random half (`jitter` in [0, 1)), so the
    workers of a fleet do not all hit a database that just came back at the same moment."""
    ceiling = min(MAX_DELAY_S, FIRST_DELAY_S * 2.0 ** min(failures, 16))
    return ceiling * (0.5 + jitter / 2)


@dataclass
class _Held:
    """The unsaved writes of one message, oldest first."""

    deadline: float
    writes: list[TurnWrite] = field(default_factory=list)

    def add(self, write: TurnWrite) -> None:
        """Queue `write` after the others; it makes any queued checkpoint redundant (a later
        checkpoint or the finish carries all the text)."""
        self.writes = [w for w in self.writes if not isinstance(w, CheckpointWrite)]
        self.writes.append(write)


class PendingWrites:
    """Holds, retries, spools and replays turn writes for one process."""

    def __init__(
        self,
        *,
        writer: TurnWriter,
        spool: Spool,
        retry_s: float,
        health: DatabaseHealth | None = None,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.writer, self.spool, self.retry_s, self.health = writer, spool, retry_s, health
        self._clock, self._jitter = clock, jitter
        self._held: dict[uuid.UUID, _Held] = {}  # in order of first failure
        self._spooled: set[uuid.UUID] = set()  # later writes of these go to the spool too
        self._spool_lock = asyncio.Lock()
        self._has_work = asyncio.Event()
        self._recovered = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        if health is not None:
            health.on_recovered(self.wake)

    @property
    def held(self) -> int:
        """Messages with unsaved writes in memory."""
        return len(self._held)

    def busy(self) -> set[uuid.UUID]:
        """Messages whose writes this process still holds or spooled (not interrupted)."""
        return set(self._held) | self._spooled

    async def start(self) -> None:
        """Start the retry task."""
        self._task = asyncio.create_task(self._run(), name="turn-write-retry")

    def wake(self) -> None:
        """Retry now (the database is back)."""
        self._recovered.set()

    async def submit(self, write: TurnWrite) -> None:
        """Save `write` now, or keep it for retry if the database is unavailable.

        Raises only for a failure that retrying cannot fix (a bug, a vanished row)."""
        message_id = write.message_id
        if message_id in self._spooled:
            async with self._spool_lock:
                if message_id in self._spooled:  # its earlier writes wait in the spool
                    await to_thread.run_sync(self.spool.put, write)
                    return
        held = self._held.get(message_id)
        if held is not None:  # behind its earlier writes
            held.add(write)
            return
        if self.health is not None and self.health.down:  # a known outage: do not wait on it
            await self._hold(write, None)
            return
        try:  # the hot path: one call, no extra await in between
            await self.writer.submit(TurnUnit(write), user_id=write.user_id)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            await self._hold(write, exc)

    async def _apply(self, write: TurnWrite, *, retry: bool) -> None:
        await self.writer.submit(TurnUnit(write, retry=retry), user_id=write.user_id)

    async def _hold(self, write: TurnWrite, exc: BaseException | None) -> None:
        if self.health is not None and exc is not None:
            self.health.failed(exc)
        if self._closing or self.retry_s <= 0:
            await self._spool_message(write.message_id, [write])
            return
        logger.warning(
            "saving message {} failed ({}); retrying for up to {:.0f} s",
            write.message_id,
            describe(exc) if exc is not None else "database unavailable",
            self.retry_s,
        )
        held = _Held(deadline=self._clock() + self.retry_s)
        held.add(write)
        self._held[write.message_id] = held
        self._has_work.set()

    async def _run(self) -> None:
        failures = 0
        while True:
            await self._has_work.wait()
            with contextlib.suppress(TimeoutError):  # backoff, cut short by a recovery
                await asyncio.wait_for(
                    self._recovered.wait(), timeout=retry_delay(failures, self._jitter())
                )
            self._recovered.clear()
            try:
                saved = await self._round()
            except Exception as exc:  # never let the retry task die: log, back off, go on
                logger.opt(exception=exc).error("retrying unsaved answers failed")
                saved = False
            failures = 0 if saved else failures + 1
            if not self._held and not self._spooled:
                self._has_work.clear()
                failures = 0

    async def _round(self) -> bool:
        """One retry round; whether everything got in."""
        saved = await self._flush()
        if saved and self._spooled:  # what this process spooled can go in now too
            saved = not await self.replay()
        if not saved:
            await self._spool_expired()
        return saved

    async def _flush(self) -> bool:
        """Retry every held write in order; False as soon as the database still fails."""
        for message_id in list(self._held):
            held = self._held[message_id]
            while held.writes:
                write = held.writes.pop(0)
                try:
                    await self._apply(write, retry=True)
                except BaseException as exc:
                    if isinstance(exc, Exception) and not is_unavailable(exc):
                        logger.opt(exception=exc).error(
                            "saving the {} of message {} failed; dropped", write.kind, message_id
                        )
                        continue
                    held.writes.insert(0, write)
                    if not isinstance(exc, Exception):
                        raise  # cancelled: the write stays held (shutdown spools it)
                    return False
            del self._held[message_id]
            logger.info("saved message {} after retrying", message_id)
        return True

    async def _spool_expired(self) -> None:
        now = self._clock()
        for message_id in [m for m, held in self._held.items() if held.deadline <= now]:
            writes = self._held.pop(message_id).writes
            await self._spool_message(message_id, writes)

    async def _spool_message(self, message_id: uuid.UUID, writes: list[TurnWrite]) -> None:
        async with self._spool_lock:
            # from now on this message's next writes queue behind the lock, then the spool
            self._spooled.add(message_id)
            paths: list[Path] = []
            try:
                for write in writes:
                    paths.append(await to_thread.run_sync(self.spool.put, write))
            except OSError as exc:  # all or nothing: a message's writes stay in order
                for path in paths:
                    await to_thread.run_sync(self.spool.remove, path)
                self._spooled.discard(message_id)
                self._spool_failed(message_id, writes, exc)
                return
            self._has_work.set()
        logger.warning(
            "message {} could not be saved; spooled {} write(s) to {} (replayed when the "
            "database is back, and at the next start)",
            message_id,
            len(paths),
            self.spool.directory,
        )

    def _spool_failed(self, message_id: uuid.UUID, writes: list[TurnWrite], exc: OSError) -> None:
        if self._closing:
            logger.error("message {} is lost: cannot spool it ({})", message_id, exc)
            return
        logger.error("cannot spool message {} ({}); keeping it in memory", message_id, exc)
        held = _Held(deadline=self._clock() + self.retry_s, writes=list(writes))
        self._held[message_id] = held
        self._has_work.set()

    async def replay(self) -> set[uuid.UUID]:
        """Apply the spooled writes, oldest first; the ids of messages still unsaved."""
        async with self._spool_lock:
            files = await to_thread.run_sync(self.spool.files)
            left: set[uuid.UUID] = set()
            applied = 0
            for index, path in enumerate(files):
                outcome = await self._replay_file(path)
                if outcome is None:  # the database is unavailable: keep the rest in order
                    left = {m for p in files[index:] if (m := _message_of(p)) is not None}
                    break
                applied += outcome
            if files:
                logger.info(
                    "replayed {} spooled write(s) from {}; {} message(s) still unsaved",
                    applied,
                    self.spool.directory,
                    len(left),
                )
            self._spooled = left & self._spooled if left else set()
            return left

    async def _replay_file(self, path: Path) -> bool | None:
        """Apply one file: True if applied, False if skipped (another worker has it, or it
        cannot be applied), None if the database is unavailable."""
        with self.spool.claim(path) as handle:
            if handle is None:  # another worker replays it, or did
                return False
            try:
                document = decode(handle.read())
            except ValueError as exc:
                target = self.spool.quarantine(path)
                logger.error("spooled write {} is unreadable ({}); moved to {}", path, exc, target)
                return False
            if document.database != self.spool.database:
                logger.warning("spooled write {} belongs to another database; left", path.name)
                return False
            write = document.write
            try:
                await self._apply(write, retry=True)
            except Exception as exc:
                if is_unavailable(exc):
                    return None
                target = self.spool.quarantine(path)
                logger.opt(exception=exc).error(
                    "spooled write {} cannot be applied; moved to {}", path.name, target
                )
                return False
            await to_thread.run_sync(self.spool.remove, path)
        return True

    async def aclose(self) -> None:
        """Stop retrying: one last try if the database looks up, then spool the rest."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._held and (self.health is None or not self.health.down):
            with contextlib.suppress(Exception):
                await self._flush()
        for message_id in list(self._held):
            await self._spool_message(message_id, self._held.pop(message_id).writes)


def _message_of(path: Path) -> uuid.UUID | None:
    """The message id in a spool file's name."""
    parts = path.name.removesuffix(".json").split("-")
    try:
        return uuid.UUID("-".join(parts[2:7]))
    except ValueError:
        return None
