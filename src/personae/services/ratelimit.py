"""Rate limits with the `limits` library: in memory when embedded, Redis at scale."""

from __future__ import annotations

import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from personae.errors import RateLimited
from personae.words import plural


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


@dataclass(frozen=True)
class Backoff:
    """Growing delays instead of a lockout: `free_failures` cost nothing, then each
    further failure makes the next attempt wait `first_delay_s`, doubling up to
    `max_delay_s`. Failures are forgotten `remember_s` after the first one."""

    free_failures: int
    first_delay_s: int
    max_delay_s: int
    remember_s: int

    def delay_after(self, failures: int) -> int:
        """Seconds the next attempt waits after this many failures (0: none)."""
        if failures < self.free_failures:
            return 0
        doublings = min(failures - self.free_failures, 32)
        return min(self.max_delay_s, self.first_delay_s << doublings)


def _refused(retry_after: float) -> RateLimited:
    retry_after = max(1.0, retry_after)
    return RateLimited(
        f"Too many attempts; try again in {plural(int(retry_after + 0.999), 'second')}.",
        retry_after=retry_after,
    )


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
        raise _refused(stats.reset_time - time.time())

    async def clear(self, scope: str, identity: str, rate: str) -> None:
        await self._limiter.clear(self._item(rate), self._prefix, scope, identity)

    # --- growing delays (Backoff): counters in the same storage, so shared in Redis ---

    def _key(self, kind: str, scope: str, identity: str) -> str:
        return f"BACKOFF/{self._prefix}/{kind}/{scope}/{identity}"

    async def wait_for_delay(self, scope: str, identity: str) -> None:
        """Raise RateLimited (with Retry-After) while a delay set by `fail` runs."""
        key = self._key("delay", scope, identity)
        if await self._storage.get(key) > 0:
            raise _refused(await self._storage.get_expiry(key) - time.time())

    async def fail(self, scope: str, identity: str, backoff: Backoff) -> int:
        """Count one failure; past the free ones, delay the next attempt. Returns the
        failures counted."""
        failures = await self._storage.incr(
            self._key("failures", scope, identity), backoff.remember_s
        )
        delay = backoff.delay_after(failures)
        if delay:
            key = self._key("delay", scope, identity)
            await self._storage.clear(key)  # a counter's expiry is set when it is created
            await self._storage.incr(key, delay)
        return failures

    async def forget(self, scope: str, identity: str) -> None:
        """Forget the failures and the running delay of an identity."""
        for kind in ("failures", "delay"):
            await self._storage.clear(self._key(kind, scope, identity))

    async def mark(self, scope: str, identity: str, ttl_s: int) -> None:
        """Remember a fact about an identity for `ttl_s` seconds (see `marked`)."""
        key = self._key("mark", scope, identity)
        await self._storage.clear(key)
        await self._storage.incr(key, ttl_s)

    async def marked(self, scope: str, identity: str) -> bool:
        return await self._storage.get(self._key("mark", scope, identity)) > 0

    async def aclose(self) -> None:
        """Close the Redis connections the storage opened (limits has no public close)."""
        client = getattr(getattr(self._storage, "bridge", None), "storage", None)
        if client is not None:
            await client.aclose()
