"""Bounds on slow clients (slowloris): the time to send a request head, and each wait
for the next piece of a body.

uvicorn bounds only the idle time between requests (keep-alive): a client that sends
a head one byte at a time, or a body that never ends, holds its connection, and a few
thousand of them hold the server. The head bound lives in the HTTP protocol (the
application never sees a request whose head is incomplete); the body bound lives in
`RequestContextMiddleware`, which reads the body before the application does and so
can still answer 408. Sending is never bounded here: a stream (SSE) may last hours.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from starlette.types import Message, Receive
from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools comes with uvicorn[standard]
    HttpToolsProtocol = None  # type: ignore[assignment,misc]


class BodyTimedOut(Exception):
    """The client sent no part of the body for the bound (see `receive_with_timeout`)."""


async def receive_with_timeout(receive: Receive, timeout_s: float) -> Message:
    """The next ASGI message, or `BodyTimedOut` when none comes within `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s):
            return await receive()
    except TimeoutError:
        raise BodyTimedOut from None


class _HeadTimer:
    """Closes the connection when a request head takes longer than `head_timeout_s`
    to arrive; the clock starts with the connection and with a new request's first byte."""

    head_timeout_s: float = 10.0
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    _head_timer: asyncio.TimerHandle | None = None

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            # No answer: the head is incomplete, so there is nothing to answer yet, and
            # a client this slow is more likely hostile than lost.
            self.transport.close()


if HttpToolsProtocol is not None:

    class _HttpToolsWithHeadTimeout(_HeadTimer, HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_head_timer()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm_head_timer()

        def on_headers_complete(self) -> None:
            self._disarm_head_timer()
            super().on_headers_complete()


class _H11WithHeadTimeout(_HeadTimer, H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # IDLE: h11 has not yet parsed a whole head for the current request.
        if self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:
            self._arm_head_timer()
        elif self.conn.their_state is not h11.IDLE:
            self._disarm_head_timer()


def head_timeout_protocol(head_timeout_s: float, prefer_h11: bool = False) -> type[Any]:
    """uvicorn's HTTP/1.1 protocol class (httptools when installed, as uvicorn's `auto`
    picks) with the head bound; pass it as `uvicorn.Config(http=...)`."""
    base: type[Any] = (
        _H11WithHeadTimeout
        if prefer_h11 or HttpToolsProtocol is None
        else _HttpToolsWithHeadTimeout
    )
    return type(base.__name__.lstrip("_"), (base,), {"head_timeout_s": head_timeout_s})
