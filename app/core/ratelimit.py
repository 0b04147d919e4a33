"""Rate limits on the `limits` library (slowapi's engine) with async storage.

slowapi's decorators key only on the request, but login is limited per IP *and* account
name (from the body), and its Redis storage is synchronous; so we drive `limits` directly:
in-memory storage by default, Redis when `REDIS_URL` is set (shared by every worker).
Keys use the socket address, never `X-Forwarded-For`: trust in proxies belongs to uvicorn's
`--proxy-headers --forwarded-allow-ips`, which rewrites the socket address for trusted hops.
"""

from __future__ import annotations

import math
import time

from fastapi import Request
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from loguru import logger

from app.core.errors import RateLimited, ServiceUnavailable


def client_ip(request: Request) -> str:
    """The socket address of the peer (as uvicorn resolved it for trusted proxies)."""
    return request.client.host if request.client else "unknown"


class RateLimiter:
    """Moving-window limits keyed by strings; raises `RateLimited` with a Retry-After."""

    def __init__(self, *, redis_url: str | None, enabled: bool = True) -> None:
        self.enabled = enabled
        self.shared = redis_url is not None
        self._storage: Storage
        if redis_url:
            storage = storage_from_string(
                f"async+{redis_url}", implementation="redispy", socket_timeout=2
            )
            assert isinstance(storage, Storage)
            self._storage = storage
        else:
            self._storage = MemoryStorage()
        self._strategy = MovingWindowRateLimiter(self._storage)
        self._items: dict[str, RateLimitItem] = {}

    def _item(self, limit: str) -> RateLimitItem:
        item = self._items.get(limit)
        if item is None:
            item = self._items[limit] = parse(limit)
        return item

    async def hit(self, limit: str, *key: str, fail_closed: bool = False) -> None:
        """Count one request against `limit` for `key`; raise when over it."""
        if not self.enabled:
            return
        item = self._item(limit)
        try:
            allowed = await self._strategy.hit(item, *key)
            if allowed:
                return
            stats = await self._strategy.get_window_stats(item, *key)
            retry_after = math.ceil(stats.reset_time - time.time())
        except Exception as exc:  # storage (Redis) unreachable
            logger.warning("rate-limit storage unavailable: {}", type(exc).__name__)
            if fail_closed:
                raise ServiceUnavailable(
                    "Rate-limit storage is unavailable; try again shortly",
                    code="rate_limit_unavailable",
                ) from exc
            return
        raise RateLimited(retry_after)

    async def healthy(self) -> bool:
        """Whether the storage answers."""
        try:
            return bool(await self._storage.check())
        except Exception:
            return False

    async def reset(self) -> None:
        """Forget every counter (tests and admin tooling)."""
        await self._storage.reset()
