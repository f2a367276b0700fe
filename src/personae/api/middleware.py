"""ASGI middleware: request ids, the body size limit, and the last line against bare 500s."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from personae.api.problems import internal_error_response, problem_response
from personae.api.request_timeouts import BodyTimedOut, receive_with_timeout
from personae.errors import AppError, NotFound, PayloadTooLarge, RequestTimedOut, ValidationFailed
from personae.logs import request_id_var

log = logging.getLogger("personae.http")
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


@dataclass(frozen=True)
class BodyLimit:
    """A body limit of its own for the paths matching `paths` (uploads), and the
    error a body past it gets."""

    paths: re.Pattern[str]
    max_bytes: int
    refusal: type[AppError] = PayloadTooLarge


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _INCOMING_ID.match(text) else None
    return None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _refuse_nul(scope: Scope) -> AppError | None:
    """NUL in an address: PostgreSQL cannot even compare it, so stop it at the door."""
    if "\x00" in scope["path"]:
        return NotFound("There is nothing at this address.")
    query = scope.get("query_string", b"").decode("latin-1")
    names = [name for name, value in parse_qsl(query, keep_blank_values=True) if "\x00" in value]
    if names:
        return ValidationFailed(
            f"{', '.join(names)}: must not contain NUL characters",
            extra={
                "errors": [
                    {"field": name, "location": "query", "message": "contains a NUL character"}
                    for name in names
                ]
            },
        )
    return None


async def _read_body(receive: Receive, limit: int, timeout_s: float) -> list[Message] | None:
    """The request's body messages, or None as soon as the body passes `limit` bytes;
    `BodyTimedOut` when the client sends nothing for `timeout_s`."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive_with_timeout(receive, timeout_s)
        messages.append(message)
        if message["type"] != "http.request":
            return messages  # the client went away: let the app see it
        size += len(message.get("body", b""))
        if size > limit:
            return None
        if not message.get("more_body", False):
            return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """Hand the buffered messages to the app, then the live ones (disconnects)."""
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


class RequestContextMiddleware:
    """Gives every request an id (header, logs, error bodies), caps the body size and
    the wait for each part of it, and turns any unexpected exception into a generic
    problem+json 500."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        body_limits: Sequence[BodyLimit] = (),
        body_timeout_s: float = 30.0,
    ) -> None:
        self.app = app
        self.body_timeout_s = body_timeout_s
        self.max_body_bytes = max_body_bytes
        self.body_limits = tuple(body_limits)

    def _limit(self, scope: Scope) -> tuple[int, type[AppError]]:
        """File uploads (paths of a `BodyLimit`) get their own, larger limit."""
        for limit in self.body_limits:
            if limit.paths.fullmatch(scope["path"]):
                return limit.max_bytes, limit.refusal
        return self.max_body_bytes, PayloadTooLarge

    async def _admit(self, scope: Scope, receive: Receive) -> tuple[AppError | None, Receive]:
        """Refuse what must not reach the app: a body over the limit or too slow to
        arrive, NUL in the address."""
        limit, refusal = self._limit(scope)
        too_large = refusal(f"The request body is larger than {limit} bytes.")
        length = _content_length(scope)
        if length is not None and length > limit:
            return too_large, receive
        refused = _refuse_nul(scope)
        if refused is not None:
            return refused, receive
        # The body is read here, up to the limit and with a bound on each wait: raised
        # from inside the app, an error would be turned into a 400 by FastAPI's body
        # parsing. Reading first also frees the app from ever waiting on a slow client.
        try:
            buffered = await _read_body(receive, limit, self.body_timeout_s)
        except BodyTimedOut:
            return RequestTimedOut(
                f"No part of the request body arrived for {self.body_timeout_s:g} seconds."
            ), receive
        if buffered is None:
            return too_large, receive
        return None, _replay(buffered, receive)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or secrets.token_hex(8)
        token = request_id_var.set(request_id)
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            refused, receive = await self._admit(scope, receive)
            if refused is not None:
                # A client this slow might trickle the rest of its body for ever, each
                # byte resetting uvicorn's idle timer: the connection ends with the answer.
                headers = {"Connection": "close"} if refused.status == 408 else None
                await problem_response(refused, headers)(scope, receive, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unexpected error", extra={"path": scope.get("path")})
            if not started:
                await internal_error_response()(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
