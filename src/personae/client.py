"""A small Python client of the public API (used by `personae chat`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from personae import __version__

_FINAL = frozenset({"complete", "stopped", "failed", "filtered"})


class ApiError(Exception):
    """A problem+json answer, with its stable code."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.code = str(body.get("code", "error"))
        self.detail = str(body.get("detail", ""))
        self.request_id = body.get("request_id")
        self.body = body
        super().__init__(f"{self.code}: {self.detail} (request {self.request_id})")


@dataclass(frozen=True)
class StreamEvent:
    id: str | None
    name: str
    data: dict[str, Any]


class PersonaeClient:
    """Log in with a password or an API token, then chat."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 30) -> None:
        # The sessions list names this client "personae terminal client" by this.
        headers = {"User-Agent": f"personae-client/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout)

    async def __aenter__(self) -> PersonaeClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"code": "http_error", "detail": response.text[:200]}
            raise ApiError(response.status_code, body)
        return response.json() if response.content else None

    async def login(self, username: str, password: str) -> dict[str, Any]:
        opened = await self._call(
            "POST", "/api/v1/auth/login", json={"username": username, "password": password}
        )
        self._http.headers["X-CSRF-Token"] = opened["csrf_token"]
        return dict(opened["user"])

    async def find_character(self, name_or_id: str) -> dict[str, Any]:
        """A character by id, or else the best match of a search by name."""
        try:
            return dict(await self._call("GET", f"/api/v1/characters/{name_or_id}"))
        except ApiError as error:
            if error.code != "not_found":
                raise
        page = await self._call("GET", "/api/v1/characters", params={"q": name_or_id})
        if not page["items"]:
            raise ApiError(404, {"code": "not_found", "detail": f"no character '{name_or_id}'"})
        exact = [c for c in page["items"] if c["name"].lower() == name_or_id.lower()]
        return dict((exact or page["items"])[0])

    async def start_chat(self, character_id: str) -> dict[str, Any]:
        return dict(await self._call("POST", "/api/v1/chats", json={"character_id": character_id}))

    async def history(self, chat_id: str, limit: int = 50) -> list[dict[str, Any]]:
        page = await self._call("GET", f"/api/v1/chats/{chat_id}/messages", params={"limit": limit})
        return list(page["items"])

    async def send(
        self, chat_id: str, content: str, client_id: str | None = None
    ) -> dict[str, Any]:
        """Send a message; retrying with the same client_id never sends it twice."""
        client_id = client_id or uuid.uuid4().hex
        path = f"/api/v1/chats/{chat_id}/messages/{client_id}"
        return dict(await self._call("PUT", path, json={"content": content}))

    async def events(
        self, chat_id: str, last_event_id: str | None = None
    ) -> AsyncIterator[StreamEvent]:
        """The chat's live events, first a local "open" event once connected
        (reconnecting is the caller's choice, with the last id)."""
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        async with self._http.stream(
            "GET", f"/api/v1/chats/{chat_id}/events", headers=headers, timeout=None
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
        """Send a message and yield its reply's events until the reply is final,
        resuming the stream from the last event id if the connection drops."""
        last_id: str | None = None
        reply_id: str | None = None
        client_id = uuid.uuid4().hex
        while True:
            try:
                async for event in self.events(chat_id, last_id):
                    if event.name == "open":
                        if reply_id is None:
                            accepted = await self.send(chat_id, content, client_id)
                            reply_id = accepted["reply"]["id"]
                        continue
                    last_id = event.id or last_id
                    if (
                        event.data.get("id") != reply_id
                        and event.data.get("message_id") != reply_id
                    ):
                        continue
                    yield event
                    if event.name == "reply_state" and event.data["status"] in _FINAL:
                        return
            except httpx.TransportError:
                continue
