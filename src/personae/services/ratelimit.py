"""Rate limits with the `limits` library: in memory when embedded, Redis at scale."""

from __future__ import annotations

import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from personae.errors import RateLimited


class BoundedMemoryStorage(MemoryStorage):
    """`limits`' in-process storage holding the windows of at most `max_keys` identities.

    Its windows expire, but a flood of new identities (addresses, account names)
    within one window would grow the process without end. Past the bound the
    least recently hit identity is forgotten: it starts a fresh window.
    """

    def __init__(self, max_keys: int) -> None:
        super().__init__()
        self.max_keys = max_keys

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        acquired = await super().acquire_entry(key, limit, expiry, amount)
        window = self.events.pop(key, None)
        if window is not None:
            self.events[key] = window  # the most recently hit goes last
        while len(self.events) > self.max_keys:
            oldest = next(iter(self.events))
            del self.events[oldest]
            self.locks.pop(oldest, None)
        return acquired

    async def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        count = await super().incr(key, expiry, amount)
        while len(self.storage) > self.max_keys:
            oldest = next(iter(self.storage))
            await self.clear(oldest)
        return count


def build_storage(
    redis_url: str | None, *, memory_keys: int = 100_000, key_prefix: str = "personae"
) -> Storage:
    """Shared counters when several processes run (Redis, every key starting with
    `key_prefix`), else in-process memory (the windows of at most `memory_keys`
    identities)."""
    if redis_url:
        uri = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
        storage = storage_from_string(uri, implementation="redispy", key_prefix=key_prefix)
        assert isinstance(storage, Storage)
        return storage
    return BoundedMemoryStorage(memory_keys)


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
