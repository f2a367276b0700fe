"""Arranging rooms in tests: people, characters, a room they all joined, and reading
event streams."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from conftest import Api

FINAL = {"complete", "stopped", "failed", "filtered"}


@dataclass
class Sse:
    id: str | None
    name: str
    data: dict[str, Any]


async def sse_events(response: httpx.Response) -> AsyncIterator[Sse | None]:
    """Parse an SSE body; yields None for a heartbeat comment."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line.startswith(":"):
            yield None
        elif line == "":
            if "event" in fields:
                yield Sse(fields.get("id"), fields["event"], json.loads(fields["data"]))
            fields = {}
        else:
            name, _, value = line.partition(": ")
            fields[name] = value


@dataclass
class Room:
    id: str
    owner: httpx.AsyncClient
    people: list[httpx.AsyncClient]
    user_ids: list[str]
    character_ids: list[str]
    names: list[str]
    body: dict[str, Any] = field(default_factory=dict)


async def make_characters(client: httpx.AsyncClient, names: list[str]) -> list[str]:
    ids = []
    for name in names:
        response = await client.post(
            "/api/v1/characters",
            json={"name": name, "description": f"{name} is one of the room.", "tagline": name},
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


async def join(owner: httpx.AsyncClient, room_id: str, who: httpx.AsyncClient, role: str) -> None:
    invite = await owner.post(f"/api/v1/rooms/{room_id}/invites", json={"role": role})
    assert invite.status_code == 201, invite.text
    accepted = await who.post(f"/api/v1/invites/{invite.json()['token']}/accept")
    assert accepted.status_code == 200, accepted.text


async def make_room(
    api: Api,
    *,
    people: int = 3,
    names: tuple[str, ...] = ("Ada", "Brom", "Cleo"),
    turn_mode: str = "list",
    roles: tuple[str, ...] = (),
    talkativeness: float | None = None,
) -> Room:
    """A room of `people` (the first owns it, the others joined by invite as member, or
    as `roles` say) and characters named `names`."""
    clients = [await api.user() for _ in range(people)]
    owner = clients[0]
    character_ids = await make_characters(owner, list(names))
    created = await owner.post(
        "/api/v1/rooms",
        json={"title": "The room", "character_ids": character_ids, "turn_mode": turn_mode},
    )
    assert created.status_code == 201, created.text
    room_id = created.json()["id"]
    for index, client in enumerate(clients[1:]):
        await join(owner, room_id, client, roles[index] if index < len(roles) else "member")
    if talkativeness is not None:
        for character_id in character_ids:
            changed = await owner.patch(
                f"/api/v1/rooms/{room_id}/characters/{character_id}",
                json={"talkativeness": talkativeness},
            )
            assert changed.status_code == 200, changed.text
    user_ids = [(await c.get("/api/v1/me")).json()["id"] for c in clients]
    body = (await owner.get(f"/api/v1/rooms/{room_id}")).json()
    return Room(room_id, owner, clients, user_ids, character_ids, list(names), body)


async def messages(client: httpx.AsyncClient, room_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/chats/{room_id}/messages", params={"limit": 200})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def wait_quiet(
    client: httpx.AsyncClient, room_id: str, replies: int, *, timeout_s: float = 60.0
) -> list[dict[str, Any]]:
    """Wait until the room holds `replies` replies (greetings left out), all final."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        items = await messages(client, room_id)
        written = [m for m in items if m["role"] == "assistant" and not m["labels"].get("greeting")]
        if len(written) >= replies and all(m["status"] in FINAL for m in written):
            return items
        if loop.time() > deadline:
            raise AssertionError(f"the room did not settle: {items}")
        await asyncio.sleep(0.05)


def over_http(client: httpx.AsyncClient, url: str) -> httpx.AsyncClient:
    """The same signed-in person, over a real HTTP server (streams need one)."""
    return httpx.AsyncClient(
        base_url=url,
        cookies={name: value for name, value in client.cookies.items()},
        headers=dict(client.headers),
        timeout=httpx.Timeout(60.0),
    )


class StreamReader:
    """Reads one member's event stream in the background, keeping every event."""

    def __init__(self, client: httpx.AsyncClient, room_id: str) -> None:
        self.client = client
        self.room_id = room_id
        self.events: list[Sse] = []
        self.status: int | None = None
        self.ended = asyncio.Event()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> StreamReader:
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        try:
            async with self.client.stream("GET", f"/api/v1/chats/{self.room_id}/events") as answer:
                self.status = answer.status_code
                self._changed.set()
                if answer.status_code != 200:
                    return
                async for event in sse_events(answer):
                    if event is not None:
                        self.events.append(event)
                        self._changed.set()
        finally:
            self.ended.set()
            self._changed.set()

    async def wait_for(self, test: Any, timeout_s: float = 60.0) -> Sse:
        """The first event for which `test(event)` holds (waiting for it to come)."""
        async with asyncio.timeout(timeout_s):
            while True:
                for event in self.events:
                    if test(event):
                        return event
                if self.ended.is_set():
                    raise AssertionError(f"the stream ended first ({self.status}): {self.events}")
                self._changed.clear()
                await self._changed.wait()

    def logged(self) -> list[tuple[str, str, Any]]:
        """The events of the chat's log (with ids): the same for every member."""
        return [(e.id, e.name, e.data) for e in self.events if e.id is not None]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.client.aclose()
