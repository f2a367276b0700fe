"""Rate limits with the `limits` library: in memory when embedded, Redis at scale."""

from __future__ import annotations

import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from personae.errors import RateLimited


def build_storage(redis_url: str | None) -> Storage:
    """Shared counters when several processes run (Redis), else in-process memory."""
    if redis_url:
        uri = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
        storage = storage_from_string(uri, implementation="redispy")
        assert isinstance(storage, Storage)
        return storage
    return MemoryStorage()


class RateLimiter:
    """Named limits ("10/minute") keyed by a scope and an identity (user, IP)."""

    def __init__(self, storage: Storage, *, key_prefix: str = "personae") -> None:
        self._storage = storage
        self._limiter = MovingWindowRateLimiter(storage)
        self._items: dict[str, RateLimitItem] = {}
        self._prefix = key_prefix

    def _item(self, rate: str) -> RateLimitItem:
        item = self._items.get(rate)
        if item is None:
            item = self._items[rate] = parse(rate)
        return item

    async def hit(self, scope: str, identity: str, rate: str) -> None:
        """Count one hit; raise RateLimited (with Retry-After) when over the limit."""
        item = self._item(rate)
        if await self._limiter.hit(item, self._prefix, scope, identity):
            return
        stats = await self._limiter.get_window_stats(item, self._prefix, scope, identity)
        retry_after = max(1.0, stats.reset_time - time.time())
        raise RateLimited(
            f"Too many attempts; try again in {int(retry_after + 0.999)} seconds.",
            retry_after=retry_after,
        )

    async def clear(self, scope: str, identity: str, rate: str) -> None:
        await self._limiter.clear(self._item(rate), self._prefix, scope, identity)

    async def aclose(self) -> None:
        """Close the Redis connections the storage opened (limits has no public close)."""
        client = getattr(getattr(self._storage, "bridge", None), "storage", None)
        if client is not None:
            await client.aclose()
