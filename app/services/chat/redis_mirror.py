"""Mirror of generation logs in Redis, for re-attach and cancel across workers and hosts.

Local readers never touch Redis. A single writer task drains a queue and pipelines XADDs,
so a token is never delayed by a Redis round trip; remote readers see it a moment later.
If Redis is down the mirror logs and drops, and chat keeps working in-process.

A remote reader never skips silently: a gap in the ids it reads, a stream that is gone or
an id the stream never held raises `ReplayLost`; it then asks the owning worker over pub/sub
to catch it up (`request_catchup`): the events it missed, or a snapshot. That worker writes
the answer through the same queue as its events, so what comes next follows it in the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger
from redis.asyncio import Redis

from app.core.sse import PING_FRAME
from app.schemas.events import TERMINAL_EVENTS
from app.services.chat.events import LoggedEvent
from app.services.chat.log import EventLog

PREFIX = "vektor:gen:"
CANCEL_CHANNEL = "vektor:gen:cancel"
CATCHUP_CHANNEL = "vektor:gen:catchup"
APPROVAL_CHANNEL = "vektor:gen:approval"  # tool-call decisions (app/services/chat/approvals.py)
CATCHUP_WAIT_S = 2.0


@dataclass(frozen=True, slots=True)
class Catchup:
    """The owner's answer to a reader that lost events: the events it missed, exactly, or a
    snapshot and what followed it; `last_id` is the id they reach, `done` if they end it."""

    frames: bytes
    last_id: int
    done: bool

    def encode(self) -> bytes:
        """`<last id> <0|1>` on the first line, then the frames."""
        return f"{self.last_id} {int(self.done)}\n".encode() + self.frames

    @classmethod
    def decode(cls, raw: bytes) -> Catchup:
        """The inverse of `encode`."""
        header, frames = raw.split(b"\n", 1)
        last_id, done = header.split(b" ")
        return cls(frames, int(last_id), done == b"1")


# (reply key, catch-up): written to the key a remote reader waits on
_Reply = tuple[str, Catchup]


# (log, None): a new generation; (log, event); (log, True/False): paused for approval or not
_Item = tuple[EventLog, LoggedEvent | bool | None] | _Reply
# every process keeps `vektor:gen:instance:<id>` alive while it runs; a generation's hash
# names its owner, so a `running` hash whose owner's key expired was left by a dead process
HEARTBEAT_S = 3.0
HEARTBEAT_TTL_S = 10


class ReplayLost(Exception):
    """The mirror cannot replay exactly after `last_id` (a gap, a lost stream, an unknown id)."""

    def __init__(self, last_id: int) -> None:
        super().__init__(f"cannot replay after event {last_id}")
        self.last_id = last_id


def _entry_id(raw: bytes | str) -> int:
    """The event id of a stream entry (`0-<id>`)."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    return int(text.split("-", 1)[1])


def _meta_key(message_id: uuid.UUID) -> str:
    return f"{PREFIX}{message_id}"


def _stream_key(message_id: uuid.UUID) -> str:
    return f"{PREFIX}{message_id}:events"


def _user_key(user_id: uuid.UUID) -> str:
    return f"{PREFIX}user:{user_id}"


def _instance_key(instance: str) -> str:
    return f"{PREFIX}instance:{instance}"


class RedisMirror:
    """Writes logs to Redis Streams and carries cancel requests over pub/sub."""

    def __init__(
        self,
        url: str,
        *,
        retention_s: float,
        max_generation_s: float,
        on_cancel: Callable[[uuid.UUID], None],
        on_catchup: Callable[[uuid.UUID, int], Catchup | None],
        on_decision: Callable[[str], None] = lambda data: None,
    ) -> None:
        self.redis: Redis = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        self.retention_s = int(max(retention_s, 1))
        self.max_generation_s = max_generation_s
        self._on_cancel = on_cancel
        self._on_catchup = on_catchup
        self._on_decision = on_decision
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.instance = uuid.uuid4().hex  # this process, as owner of its generations

    async def start(self) -> None:
        """Start the writer, the cancel listener and the heartbeat."""
        self._tasks = [
            asyncio.create_task(self._writer(), name="redis-mirror-writer"),
            asyncio.create_task(self._listen_cancel(), name="redis-cancel-listener"),
            asyncio.create_task(self._heartbeat(), name="redis-instance-heartbeat"),
        ]

    async def aclose(self) -> None:
        """Flush what is queued (briefly), then stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout=2)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):  # gone at once, not after the TTL
            await self.redis.delete(_instance_key(self.instance))
        await self.redis.aclose()

    def register(self, log: EventLog) -> None:
        """Queue the ownership record of a new generation."""
        self._queue.put_nowait((log, None))

    def push(self, log: EventLog, event: LoggedEvent) -> None:
        """Queue one event for the stream."""
        self._queue.put_nowait((log, event))

    def set_paused(self, log: EventLog, *, paused: bool) -> None:
        """Queue: a generation paused for approval does not count towards its user's."""
        self._queue.put_nowait((log, paused))

    async def _writer(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < 1000:
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            except Exception as exc:
                logger.warning("redis mirror write failed ({}); events dropped", exc)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write(self, batch: list[_Item]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        now = time.time()
        for item in batch:
            if isinstance(item[1], Catchup):
                pipe.rpush(item[0], item[1].encode())
                pipe.expire(item[0], 30)
                continue
            log, event = item
            meta, stream = _meta_key(log.message_id), _stream_key(log.message_id)
            if isinstance(event, bool):  # a paused generation does not count for its user
                if event:
                    pipe.zrem(_user_key(log.user_id), str(log.message_id))
                else:
                    pipe.zadd(_user_key(log.user_id), {str(log.message_id): now})
                continue
            if event is None:
                pipe.hset(
                    meta,
                    mapping={
                        "user_id": str(log.user_id),
                        "status": "running",
                        "owner": self.instance,
                    },
                )
                pipe.expire(meta, int(self.max_generation_s + self.retention_s))
                pipe.zadd(_user_key(log.user_id), {str(log.message_id): now})
                pipe.expire(_user_key(log.user_id), int(self.max_generation_s))
                continue
            pipe.xadd(stream, {"e": event.name, "f": event.frame}, id=f"0-{event.id}")
            if event.name in TERMINAL_EVENTS:
                pipe.hset(meta, "status", "done")
                pipe.expire(meta, self.retention_s)
                pipe.expire(stream, self.retention_s)
                pipe.zrem(_user_key(log.user_id), str(log.message_id))
            elif event.id == log.first_id:  # 1, or above a continued answer's earlier ids
                pipe.expire(stream, int(self.max_generation_s + self.retention_s))
        await pipe.execute()

    async def _listen_cancel(self) -> None:
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(CANCEL_CHANNEL, CATCHUP_CHANNEL, APPROVAL_CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    with contextlib.suppress(ValueError):
                        self._on_message(message["channel"], message["data"].decode())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("redis cancel listener lost its connection ({}); retrying", exc)
                await asyncio.sleep(1)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _on_message(self, channel: bytes, data: str) -> None:
        """A cancel request, a tool-call decision, or a catch-up request for a generation
        that may run here."""
        if channel.decode() == CANCEL_CHANNEL:
            self._on_cancel(uuid.UUID(data))
            return
        if channel.decode() == APPROVAL_CHANNEL:
            self._on_decision(data)
            return
        message_id, after, reply_key = data.split(" ", 2)
        if not reply_key.startswith(f"{PREFIX}{message_id}:catchup:"):
            return
        found = self._on_catchup(uuid.UUID(message_id), int(after))
        if found is not None:  # queued behind the events it covers, ahead of the next ones
            self._queue.put_nowait((reply_key, found))

    async def request_catchup(self, message_id: uuid.UUID, after: int) -> Catchup | None:
        """Ask the worker running a generation for what follows `after`; None if none answers."""
        key = f"{PREFIX}{message_id}:catchup:{uuid.uuid4().hex}"
        try:
            await self.redis.publish(CATCHUP_CHANNEL, f"{message_id} {after} {key}")
            reply: Any = await self.redis.blpop([key], timeout=CATCHUP_WAIT_S)
        except Exception as exc:
            logger.warning("catch-up request for {} failed: {}", message_id, exc)
            return None
        return None if reply is None else Catchup.decode(bytes(reply[1]))

    async def _heartbeat(self) -> None:
        failing = False
        while True:
            try:
                await self.redis.set(_instance_key(self.instance), "1", ex=HEARTBEAT_TTL_S)
                failing = False
            except Exception as exc:
                if not failing:
                    logger.warning("redis heartbeat failed ({}); retrying", exc)
                failing = True
            await asyncio.sleep(HEARTBEAT_S)

    async def states(self, message_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
        """Per generation: `running` (its owner is alive: still generating, or still saving
        its answer), `orphaned` (its owner is gone) or `unknown` (no record: finished long
        ago, or never mirrored). Raises if Redis cannot be asked."""
        pipe = self.redis.pipeline(transaction=False)
        for message_id in message_ids:
            pipe.hmget(_meta_key(message_id), ["status", "owner"])
        metas: list[Any] = await pipe.execute()
        owners = sorted({owner.decode() for _, owner in metas if owner})
        alive: dict[str, bool] = {}
        if owners:
            pipe = self.redis.pipeline(transaction=False)
            for owner in owners:
                pipe.exists(_instance_key(owner))
            alive = dict(zip(owners, map(bool, await pipe.execute()), strict=True))
        result: dict[uuid.UUID, str] = {}
        for message_id, (status, owner) in zip(message_ids, metas, strict=True):
            if status is None:
                result[message_id] = "unknown"
            elif owner is None:  # written before owners were recorded: trust the status
                result[message_id] = "running" if status == b"running" else "orphaned"
            else:
                result[message_id] = "running" if alive.get(owner.decode()) else "orphaned"
        return result

    async def owner(self, message_id: uuid.UUID) -> uuid.UUID | None:
        """The user who owns a mirrored generation, if Redis knows it."""
        try:
            raw: Any = await self.redis.hget(_meta_key(message_id), "user_id")
        except Exception:
            return None
        return uuid.UUID(raw.decode()) if raw else None

    async def running_for(self, user_id: uuid.UUID) -> int:
        """Running generations of a user on any worker."""
        key = _user_key(user_id)
        await self.redis.zremrangebyscore(key, "-inf", time.time() - self.max_generation_s)
        return int(await self.redis.zcard(key))

    async def request_cancel(self, *, message_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        """Publish a cancel request if the generation is this user's and still running."""
        try:
            meta: dict[Any, Any] = await self.redis.hgetall(_meta_key(message_id))
        except Exception:
            return False
        if meta.get(b"user_id", b"").decode() != str(user_id):
            return False
        if meta.get(b"status") != b"running":
            return False
        await self.redis.publish(CANCEL_CHANNEL, str(message_id))
        return True

    async def follow(
        self, *, message_id: uuid.UUID, last_event_id: int, ping_s: float
    ) -> AsyncIterator[bytes]:
        """Read a mirrored log after `last_event_id` until its terminal event.

        Raises `ReplayLost` (after yielding what was contiguous) when an event is missing."""
        stream, cursor = _stream_key(message_id), last_event_id
        block: int | None = None  # the first read does not wait: a finished log answers now
        while True:
            response: Any = await self.redis.xread({stream: f"0-{cursor}"}, count=500, block=block)
            if not response:
                state: Any = await self.redis.hget(_meta_key(message_id), "status")
                if state != b"running":  # forgotten, or finished: is our next event there?
                    response = await self.redis.xread({stream: f"0-{cursor}"}, count=500)
                    if not response:
                        raise ReplayLost(cursor)
                else:
                    if block is not None:
                        yield PING_FRAME
                    block = max(int(ping_s * 1000), 1)
                    continue
            block = max(int(ping_s * 1000), 1)
            frames: list[bytes] = []
            for raw_id, fields in response[0][1]:
                if _entry_id(raw_id) != cursor + 1:  # a gap: events were lost
                    if frames:
                        yield b"".join(frames)
                    raise ReplayLost(cursor)
                cursor += 1
                frames.append(fields[b"f"])
                if fields[b"e"].decode() in TERMINAL_EVENTS:
                    yield b"".join(frames)
                    return
            yield b"".join(frames)
