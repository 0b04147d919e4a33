"""Rate limits on the `limits` library (slowapi's engine) with async storage.

slowapi's decorators key only on the request, but login is limited per IP *and* account
name (from the body), and its Redis storage is synchronous; so we drive `limits` directly:
in-process moving windows by default, Redis when `REDIS_URL` is set (shared by every worker).
(`limits`' own async memory storage sweeps every key on a thread after each hit: a thread
hop per key on the request path, so the in-process case is a small deque per key instead.)
Keys use the socket address, never `X-Forwarded-For`: trust in proxies belongs to uvicorn's
`--proxy-headers --forwarded-allow-ips`, which rewrites the socket address for trusted hops.
"""

from __future__ import annotations

import math
import time
from collections import deque

from fastapi import Request
from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from loguru import logger

from app.core.errors import RateLimited, ServiceUnavailable


def client_ip(request: Request) -> str:
    """The socket address of the peer (as uvicorn resolved it for trusted proxies)."""
    return request.client.host if request.client else "unknown"


SWEEP_EVERY = 1000


class LocalWindows:
    """Moving windows in this process: the hit times of each key in a deque (O(1) per hit)."""

    def __init__(self) -> None:
        self._keys: dict[str, tuple[float, deque[float]]] = {}
        self._since_sweep = 0

    def hit(self, key: str, *, amount: int, window_s: float) -> float | None:
        """Count a hit; None when allowed, else the seconds until the oldest hit expires."""
        now = time.monotonic()
        entry = self._keys.get(key)
        if entry is None:
            entry = self._keys[key] = (window_s, deque())
        hits = entry[1]
        while hits and hits[0] <= now - window_s:
            hits.popleft()
        if len(hits) >= amount:
            return hits[0] + window_s - now
        hits.append(now)
        self._since_sweep += 1
        if self._since_sweep >= SWEEP_EVERY:
            self._sweep(now)
        return None

    def _sweep(self, now: float) -> None:
        """Forget keys whose newest hit has left their window (bounded memory)."""
        self._since_sweep = 0
        stale = [
            k for k, (window, hits) in self._keys.items() if not hits or hits[-1] <= now - window
        ]
        for key in stale:
            del self._keys[key]

    def clear(self) -> None:
        """Forget every key."""
        self._keys.clear()


class RateLimiter:
    """Moving-window limits keyed by strings; raises `RateLimited` with a Retry-After."""

    def __init__(self, *, redis_url: str | None, enabled: bool = True) -> None:
        self.enabled = enabled
        self.shared = redis_url is not None
        self._local = LocalWindows()
        self._storage: Storage | None = None
        self._strategy: MovingWindowRateLimiter | None = None
        if redis_url:
            storage = storage_from_string(
                f"async+{redis_url}", implementation="redispy", socket_timeout=2
            )
            assert isinstance(storage, Storage)
            self._storage = storage
            self._strategy = MovingWindowRateLimiter(storage)
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
        if self._strategy is None:
            wait = self._local.hit(
                "/".join((item.key_for(), *key)),
                amount=item.amount,
                window_s=item.get_expiry(),
            )
            if wait is not None:
                raise RateLimited(max(1, math.ceil(wait)))
            return
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
        if self._storage is None:
            return True
        try:
            return bool(await self._storage.check())
        except Exception:
            return False

    async def reset(self) -> None:
        """Forget every counter (tests and admin tooling)."""
        self._local.clear()
        if self._storage is not None:
            await self._storage.reset()
