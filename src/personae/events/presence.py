"""Who is here in a room: a mark per open event stream, each with an expiry that the
stream refreshes while it lasts. A process that dies leaves marks that expire on their
own, so nobody stays "here" for longer than the time to live.

In memory for one process; a sorted set per room in Redis (score: the expiry in
milliseconds) when several processes serve streams.
"""

from __future__ import annotations

import time
from typing import Protocol

from redis.asyncio import Redis


def _now_ms() -> int:
    return int(time.time() * 1000)


class Presence(Protocol):
    async def touch(self, room: str, user_id: str, stream_id: str, ttl_s: float) -> None:
        """Mark (or mark again) one stream of a user as here for `ttl_s` seconds."""
        ...

    async def leave(self, room: str, user_id: str, stream_id: str) -> None: ...

    async def here(self, room: str) -> list[str]:
        """The users with at least one live mark, sorted."""
        ...

    async def aclose(self) -> None: ...


class MemoryPresence:
    def __init__(self) -> None:
        self._marks: dict[str, dict[str, int]] = {}

    async def touch(self, room: str, user_id: str, stream_id: str, ttl_s: float) -> None:
        self._marks.setdefault(room, {})[f"{user_id}|{stream_id}"] = _now_ms() + int(ttl_s * 1000)

    async def leave(self, room: str, user_id: str, stream_id: str) -> None:
        marks = self._marks.get(room)
        if marks is not None:
            marks.pop(f"{user_id}|{stream_id}", None)
            if not marks:
                del self._marks[room]

    async def here(self, room: str) -> list[str]:
        marks = self._marks.get(room, {})
        now = _now_ms()
        for key in [key for key, until in marks.items() if until <= now]:
            del marks[key]
        return sorted({key.partition("|")[0] for key in marks})

    async def aclose(self) -> None:
        self._marks.clear()


class RedisPresence:
    def __init__(self, url: str, *, prefix: str, timeout_s: float = 5.0) -> None:
        self._redis: Redis = Redis.from_url(
            url, decode_responses=True, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._prefix = prefix

    def _key(self, room: str) -> str:
        return f"{self._prefix}:presence:{room}"

    async def touch(self, room: str, user_id: str, stream_id: str, ttl_s: float) -> None:
        key = self._key(room)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {f"{user_id}|{stream_id}": _now_ms() + int(ttl_s * 1000)})
            pipe.expire(key, int(ttl_s) + 60)
            await pipe.execute()

    async def leave(self, room: str, user_id: str, stream_id: str) -> None:
        await self._redis.zrem(self._key(room), f"{user_id}|{stream_id}")

    async def here(self, room: str) -> list[str]:
        key = self._key(room)
        now = _now_ms()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.zrange(key, 0, -1)
            _, members = await pipe.execute()
        return sorted({str(member).partition("|")[0] for member in members})

    async def aclose(self) -> None:
        await self._redis.aclose()
