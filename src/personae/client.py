"""A small Python client of the public API (used by `personae chat`)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from personae import __version__

_FINAL = frozenset({"complete", "stopped", "failed", "filtered"})
# A stream that drops is reopened from its last event id; a server that stays away
# this many times in a row (about 15 s with the waits below) is reported unreachable.
_RECONNECTS = 6
_RECONNECT_WAIT_S = 0.5


class ApiError(Exception):
    """A problem+json answer, with its stable code."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.code = str(body.get("code", "error"))
        self.detail = str(body.get("detail", ""))
        self.request_id = body.get("request_id")
        self.body = body
        super().__init__(f"{self.code}: {self.detail} (request {self.request_id})")


class Unreachable(Exception):
    """No HTTP answer at all: the server is down, the address wrong, or the network out."""

    def __init__(self, url: str, error: httpx.TransportError) -> None:
        self.url = url
        self.reason = _reason(error)
        super().__init__(f"cannot reach the server at {url} ({self.reason})")


def _reason(error: httpx.TransportError) -> str:
    """Why, in a few words: "connection refused", "name or service not known"...
    (the OS's words for the first error number in the chain of causes)."""
    if isinstance(error, httpx.TimeoutException):
        return "timed out"
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno is not None:
            words = os.strerror(cause.errno) if cause.errno > 0 else str(cause.strerror)
            return words[:1].lower() + words[1:]
        cause = cause.__cause__ or cause.__context__
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(error).strip()) or type(error).__name__
    return text[:1].lower() + text[1:]


@dataclass(frozen=True)
class StreamEvent:
    id: str | None
    name: str
    data: dict[str, Any]


def segment(value: str) -> str:
    """A name or id as one path segment (a '/' or '?' in it stays inside)."""
    return quote(value, safe="")


class PersonaeClient:
    """Log in with a password or an API token, then chat."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 30) -> None:
        # The sessions list names this client "personae terminal client" by this.
        headers = {"User-Agent": f"personae-client/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.base_url = base_url
        self._http = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout)

    async def __aenter__(self) -> PersonaeClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise Unreachable(self.base_url, error) from error
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"code": "http_error", "detail": response.text[:200]}
            raise ApiError(response.status_code, body)
        return response.json() if response.content else None

    async def ping(self) -> None:
        """Raise Unreachable unless something answers HTTP at the address."""
        try:
            await self._http.get("/healthz")
        except httpx.TransportError as error:
            raise Unreachable(self.base_url, error) from error

    async def login(self, username: str, password: str) -> dict[str, Any]:
        opened = await self._call(
            "POST", "/api/v1/auth/login", json={"username": username, "password": password}
        )
        self._http.headers["X-CSRF-Token"] = opened["csrf_token"]
        return dict(opened["user"])

    async def character(self, character_id: str) -> dict[str, Any] | None:
        """The character with this id, or None when there is none the viewer may see."""
        try:
            return dict(await self._call("GET", f"/api/v1/characters/{segment(character_id)}"))
        except ApiError as error:
            if error.code != "not_found":
                raise
            return None

    async def search_characters(
        self, query: str, *, mine: bool = False, pages: int = 10
    ) -> list[dict[str, Any]]:
        """Characters whose name, tagline or description holds `query` (public ones,
        or with `mine` the viewer's own, private included), at most `pages` pages."""
        params: dict[str, Any] = {"q": query, "limit": 100, **({"owner": "me"} if mine else {})}
        found: list[dict[str, Any]] = []
        for page in range(pages):
            answer = await self._call(
                "GET", "/api/v1/characters", params={**params, "offset": page * 100}
            )
            items = answer["items"]
            found.extend(items)
            if len(items) < 100:
                break
        return found

    async def last_chat_with(self, character_id: str) -> dict[str, Any] | None:
        """The viewer's most recently active chat with the character (chats come newest first)."""
        offset = 0
        while True:
            page = await self._call("GET", "/api/v1/chats", params={"limit": 100, "offset": offset})
            for chat in page["items"]:
                if chat["character_id"] == character_id:
                    return dict(chat)
            if len(page["items"]) < 100:
                return None
            offset += 100

    async def start_chat(self, character_id: str) -> dict[str, Any]:
        return dict(await self._call("POST", "/api/v1/chats", json={"character_id": character_id}))

    async def history(self, chat_id: str, limit: int = 50) -> list[dict[str, Any]]:
        page = await self._call(
            "GET", f"/api/v1/chats/{segment(chat_id)}/messages", params={"limit": limit}
        )
        return list(page["items"])

    async def send(
        self,
        chat_id: str,
        content: str,
        client_id: str | None = None,
        *,
        respond_with: str | None = None,
    ) -> dict[str, Any]:
        """Send a message; retrying with the same client_id never sends it twice. In a
        room, `respond_with` names the character who answers."""
        client_id = client_id or uuid.uuid4().hex
        path = f"/api/v1/chats/{segment(chat_id)}/messages/{client_id}"
        body: dict[str, Any] = {"content": content}
        if respond_with:
            body["respond_with"] = respond_with
        return dict(await self._call("PUT", path, json=body))

    async def me(self) -> dict[str, Any]:
        return dict(await self._call("GET", "/api/v1/me"))

    async def room(self, room_id: str) -> dict[str, Any] | None:
        """The room with this id, or None when there is none the viewer is in."""
        try:
            return dict(await self._call("GET", f"/api/v1/rooms/{segment(room_id)}"))
        except ApiError as error:
            if error.code not in ("not_found", "not_a_room"):
                raise
            return None

    async def accept_invite(self, token: str) -> dict[str, Any]:
        """Join a room by an invite's token; answers the room."""
        return dict(await self._call("POST", f"/api/v1/invites/{segment(token)}/accept"))

    async def start_auto(self, room_id: str, turns: int) -> None:
        await self._call("POST", f"/api/v1/rooms/{segment(room_id)}/auto", json={"turns": turns})

    async def stop_auto(self, room_id: str) -> None:
        await self._call("DELETE", f"/api/v1/rooms/{segment(room_id)}/auto")

    async def swipe(self, message_id: str) -> dict[str, Any]:
        """Ask for another reply beside this one; answers the new reply (queued)."""
        return dict(await self._call("POST", f"/api/v1/messages/{segment(message_id)}/swipes"))

    async def continue_reply(self, message_id: str) -> dict[str, Any]:
        """Ask the character to go on from the end of this reply; answers the reply
        that streams the continuation."""
        return dict(await self._call("POST", f"/api/v1/messages/{segment(message_id)}/continue"))

    async def rate(self, message_id: str, stars: int) -> dict[str, Any]:
        path = f"/api/v1/messages/{segment(message_id)}/rating"
        return dict(await self._call("PUT", path, json={"stars": stars}))

    async def events(
        self, chat_id: str, last_event_id: str | None = None
    ) -> AsyncIterator[StreamEvent]:
        """The chat's live events, first a local "open" event once connected
        (reconnecting is the caller's choice, with the last id)."""
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        async with self._http.stream(
            "GET", f"/api/v1/chats/{segment(chat_id)}/events", headers=headers, timeout=None
        ) as response:
            if response.status_code >= 400:
                await response.aread()
                raise ApiError(response.status_code, response.json())
            yield StreamEvent(None, "open", {})
            fields: dict[str, str] = {}
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    continue
                if line:
                    name, _, value = line.partition(": ")
                    fields[name] = value
                    continue
                if "event" in fields and "data" in fields:
                    yield StreamEvent(fields.get("id"), fields["event"], json.loads(fields["data"]))
                fields = {}

    async def reply_stream(self, chat_id: str, content: str) -> AsyncIterator[StreamEvent]:
        """Send a message and yield its reply's events until the reply is final."""
        client_id = uuid.uuid4().hex

        async def start() -> dict[str, Any]:
            # The same client_id on a retry: the message is stored once.
            return dict((await self.send(chat_id, content, client_id))["reply"])

        async for event in self.follow(chat_id, start):
            yield event

    async def follow(
        self, chat_id: str, start: Callable[[], Awaitable[dict[str, Any]]]
    ) -> AsyncIterator[StreamEvent]:
        """Open the chat's stream, call `start` (a send, swipe or continue answering
        the reply), then yield that reply's events until it is final: first an
        "accepted" event with the reply as `start` answered it. A dropped stream is
        reopened from the last event id; a server that stays away raises Unreachable."""
        last_id: str | None = None
        reply: dict[str, Any] | None = None
        failures = 0
        while True:
            try:
                async for event in self.events(chat_id, last_id):
                    failures = 0
                    if event.name == "open":
                        if reply is None:
                            reply = await start()
                            yield StreamEvent(None, "accepted", reply)
                        continue
                    assert reply is not None
                    last_id = event.id or last_id
                    if reply["id"] not in (event.data.get("id"), event.data.get("message_id")):
                        continue
                    yield event
                    if event.name == "reply_state" and event.data["status"] in _FINAL:
                        return
            except (httpx.TransportError, Unreachable) as error:
                failures += 1
                if failures >= _RECONNECTS:
                    if isinstance(error, Unreachable):
                        raise
                    raise Unreachable(self.base_url, error) from error
                await asyncio.sleep(_RECONNECT_WAIT_S * failures)
