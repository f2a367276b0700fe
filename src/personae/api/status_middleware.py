"""Two thin ASGI layers: read-only maintenance mode, and request metrics.

During maintenance every response carries `X-Personae-Maintenance: <id>`;
reads pass; a sent message is still accepted (stored, its reply waits); other
writes get 503 `maintenance` with Retry-After. Operators' own calls (admin API,
logging in and out) pass so they can end the maintenance.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from personae.api.problems import problem_response
from personae.container import Container
from personae.errors import Maintenance

_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_WRITES_ALLOWED = (
    re.compile(r"^/api/v1/chats/[^/]+/messages/[^/]+$"),  # sends are stored, replies wait
    re.compile(r"^/api/v1/messages/[^/]+/stop$"),
    re.compile(r"^/api/v1/auth/(login|logout)$"),
    re.compile(r"^/api/v1/admin/"),
)
_DEFAULT_RETRY_S = 300.0
_MIN_RETRY_S = 30.0


def _retry_after(until: datetime | None) -> float:
    if until is None:
        return _DEFAULT_RETRY_S
    left = (until - datetime.now(UTC)).total_seconds()
    return max(_MIN_RETRY_S, left) if left > 0 else _DEFAULT_RETRY_S


class MaintenanceMiddleware:
    def __init__(self, app: ASGIApp, *, container: Container) -> None:
        self.app = app
        self.container = container

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            active = await self.container.status.active_maintenance()
        except Exception:  # no database: the app answers (and reports) that itself
            active = None
        if active is None:
            await self.app(scope, receive, send)
            return
        marker = (b"x-personae-maintenance", active.id.encode())

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), marker]}
            await send(message)

        path = scope["path"]
        if scope["method"] in _READS or any(p.match(path) for p in _WRITES_ALLOWED):
            await self.app(scope, receive, send_marked)
            return
        refusal = Maintenance(
            f"{active.title}: the service is read-only for now. You can read everything; "
            "nothing was changed. Try again when the maintenance ends.",
            retry_after=_retry_after(active.until),
            extra={"maintenance_id": active.id},
        )
        await problem_response(refusal)(scope, receive, send_marked)


class MetricsMiddleware:
    """Counts requests by route template (never the raw path: ids would explode the labels)."""

    def __init__(self, app: ASGIApp, *, container: Container) -> None:
        self.app = app
        self.metrics = container.metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 500

        async def send_seen(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_seen)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(
                scope["method"], template, status, time.monotonic() - started
            )
