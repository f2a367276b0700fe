"""The event log at scale: one Redis stream per chat, shared by every process."""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from personae.events.base import Event, parse_event_id

_RETAIN_S = 24 * 3600
# A reader's XREAD blocks at most this long; one that wants longer is answered empty.
_MAX_BLOCK_S = 30.0
# Each open stream holds one reader connection while it blocks. redis-py 8 caps a
# pool at 100 connections, which failed the 101st stream of a process with "Too
# many connections"; Redis itself serves 10,000 clients by default.
_MAX_READER_CONNECTIONS = 10_000


class RedisEventLog:
    """XADD with an approximate MAXLEN; readers block on XREAD from their last id.

    A command with no answer in `timeout_s` fails. Blocking reads have their own
    connections, whose timeout is their longest block plus `timeout_s`: an idle
    stream's read is not a dead Redis.
    """

    def __init__(self, url: str, *, prefix: str, size: int = 1000, timeout_s: float = 5.0) -> None:
        self._redis: Redis = Redis.from_url(
            url, decode_responses=True, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._readers: Redis = Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=_MAX_BLOCK_S + timeout_s,
            socket_connect_timeout=timeout_s,
            max_connections=_MAX_READER_CONNECTIONS,
        )
        self._prefix = prefix
        self._size = size

    def _key(self, stream: str) -> str:
        return f"{self._prefix}:events:{stream}"

    async def publish(self, stream: str, name: str, data: dict[str, Any]) -> Event:
        key = self._key(stream)
        fields = {"name": name, "data": json.dumps(data, separators=(",", ":"))}
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(key, fields, maxlen=self._size, approximate=True)  # type: ignore[arg-type]
            pipe.expire(key, _RETAIN_S)
            event_id, _ = await pipe.execute()
        return Event(str(event_id), name, data)

    @staticmethod
    def _events(entries: list[Any]) -> list[Event]:
        return [
            Event(str(entry_id), fields["name"], json.loads(fields["data"]))
            for entry_id, fields in entries
        ]

    async def read(self, stream: str, after: str | None, *, wait_s: float) -> list[Event]:
        key = self._key(stream)
        if after is not None and parse_event_id(after) is None:
            return []
        start = after or "0-0"
        if wait_s > 0:
            block = int(min(wait_s, _MAX_BLOCK_S) * 1000)
            answer: Any = await self._readers.xread({key: start}, block=block, count=500)
        else:
            answer = await self._redis.xread({key: start}, count=500)
        if not answer:
            return []
        _, entries = answer[0]
        return self._events(entries)

    async def last_id(self, stream: str) -> str | None:
        entries = await self._redis.xrevrange(self._key(stream), count=1)
        return str(entries[0][0]) if entries else None

    async def covers(self, stream: str, after: str) -> bool:
        position = parse_event_id(after)
        if position is None:
            return False
        key = self._key(stream)
        if not await self._redis.exists(key):
            return False
        info = await self._redis.xinfo_stream(key)
        deleted = parse_event_id(str(info.get("max-deleted-entry-id", "0-0"))) or (0, 0)
        return position >= deleted

    async def aclose(self) -> None:
        await self._redis.aclose()
        await self._readers.aclose()
