"""Server-Sent Events on the wire: ids, event names, JSON data, heartbeats."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from starlette.responses import StreamingResponse

from personae.services.streams import StreamItem

_RECONNECT_MS = 2000


def _frame(item: StreamItem | None) -> bytes:
    if item is None:
        return b": heartbeat\n\n"
    lines = []
    if item.id is not None:
        lines.append(f"id: {item.id}")
    lines.append(f"event: {item.name}")
    lines.append("data: " + json.dumps(item.data, separators=(",", ":"), ensure_ascii=False))
    return ("\n".join(lines) + "\n\n").encode()


async def _frames(items: AsyncIterator[StreamItem | None]) -> AsyncIterator[bytes]:
    yield f"retry: {_RECONNECT_MS}\n\n".encode()
    async for item in items:
        yield _frame(item)


def event_stream_response(items: AsyncIterator[StreamItem | None]) -> StreamingResponse:
    return StreamingResponse(
        _frames(items),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
