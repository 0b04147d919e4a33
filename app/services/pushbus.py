"""One Redis pub/sub connection per worker for every "tell the other workers" push.

The sync hub ("this user's data changed") and the session-revocation notifier ("these
sessions were revoked") publish here and register a handler per channel. Publishing never
waits for Redis: messages are queued and a background task sends them in batches. Each
message carries this worker's origin so a worker skips its own (it already delivered them
locally). If Redis is down, messages are dropped with one warning; when the listener is back
it calls every channel's `on_reconnect`, so listeners can re-check what they may have missed.
Without `REDIS_URL` the bus is inert and everything stays in the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger
from redis.asyncio import Redis

RETRY_MAX_S = 2.0
BATCH = 500


@dataclass(frozen=True, slots=True)
class _Channel:
    handler: Callable[[str], None]
    on_reconnect: Callable[[], None] | None


class PushBus:
    """Publishes to and listens on a few Redis channels over one connection per worker."""

    def __init__(self, *, redis_url: str | None) -> None:
        self.origin = uuid.uuid4().hex
        self._redis: Redis | None = (
            Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
            if redis_url
            else None
        )
        self._channels: dict[str, _Channel] = {}
        self._outbox: asyncio.Queue[tuple[str, str]] = asyncio.Queue(maxsize=100_000)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def shared(self) -> bool:
        """Whether messages reach other workers (a Redis is configured)."""
        return self._redis is not None

    def on(
        self,
        channel: str,
        *,
        handler: Callable[[str], None],
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        """Call `handler(payload)` for every message other workers publish on `channel`."""
        if self._tasks:
            raise RuntimeError("register channels before the bus starts")
        self._channels[channel] = _Channel(handler=handler, on_reconnect=on_reconnect)

    def publish(self, channel: str, payload: str) -> None:
        """Queue a message for the other workers (dropped when the queue is full)."""
        if self._redis is not None:
            with contextlib.suppress(asyncio.QueueFull):
                self._outbox.put_nowait((channel, payload))

    async def start(self) -> None:
        """With Redis: start the publisher and the listener."""
        if self._redis is not None and self._channels:
            self._tasks = [
                asyncio.create_task(self._publish_loop(), name="pushbus-publisher"),
                asyncio.create_task(self._listen_loop(), name="pushbus-listener"),
            ]

    async def aclose(self) -> None:
        """Stop the Redis tasks and close the connection."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._redis is not None:
            await self._redis.aclose()

    async def _publish_loop(self) -> None:
        assert self._redis is not None
        failing = False
        while True:
            batch = [await self._outbox.get()]
            while not self._outbox.empty() and len(batch) < BATCH:
                batch.append(self._outbox.get_nowait())
            try:
                pipe = self._redis.pipeline(transaction=False)
                for channel, payload in batch:
                    pipe.publish(channel, f"{self.origin}|{payload}")
                await pipe.execute()
                failing = False
            except Exception as exc:
                if not failing:
                    logger.warning("push via Redis failed ({}); other workers catch up", exc)
                failing = True

    async def _listen_loop(self) -> None:
        assert self._redis is not None
        delay, lost = 0.2, False
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(*self._channels)
                if lost:
                    logger.info("push listener reconnected to Redis")
                    for channel in self._channels.values():
                        if channel.on_reconnect is not None:
                            channel.on_reconnect()  # may have missed messages meanwhile
                delay, lost = 0.2, False
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
                    if message is not None and message.get("type") == "message":
                        self._dispatch(message["channel"], message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not lost:
                    logger.warning("push listener lost Redis ({}); retrying", exc)
                lost = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _dispatch(self, channel: Any, data: Any) -> None:
        """Hand another worker's message to its channel's handler."""
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        text = data.decode() if isinstance(data, bytes) else str(data)
        origin, _, payload = text.partition("|")
        found = self._channels.get(name)
        if found is None or origin == self.origin or not payload:
            return
        try:
            found.handler(payload)
        except ValueError:
            logger.warning("ignoring a malformed message on {}", name)
