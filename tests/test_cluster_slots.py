"""A backend's slots and the waiting room are the cluster's, not each process's: with
two api processes and two workers (real processes on PostgreSQL and Redis, a
SIMULATED backend process that counts the requests it is sent at once), the backend
never has more requests in flight than its slots, and a waiting reply is told the
same place and estimate whichever api process answers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from cluster_processes import cluster
from conftest import PASSWORD, POSTGRES_URL, REDIS_URL

pytestmark = pytest.mark.skipif(
    not (POSTGRES_URL and REDIS_URL), reason="several processes need PostgreSQL and Redis"
)
_SLOTS = 4
_FINAL = ("complete", "failed", "stopped")


async def _user(client: httpx.AsyncClient, name: str) -> None:
    registered = await client.post(
        "/api/v1/auth/register", json={"username": name, "password": PASSWORD}
    )
    assert registered.status_code == 201, registered.text
    client.headers["X-CSRF-Token"] = registered.json()["csrf_token"]


async def _chat(client: httpx.AsyncClient) -> str:
    character = await client.post("/api/v1/characters", json={"name": "Bramble"})
    chat = await client.post("/api/v1/chats", json={"character_id": character.json()["id"]})
    return str(chat.json()["id"])


async def _send(client: httpx.AsyncClient, url: str, chat_id: str, key: str) -> dict[str, Any]:
    """PUT the message `key` through the api process at `url` (again: the same pair)."""
    sent = await client.put(
        f"{url}/api/v1/chats/{chat_id}/messages/{key}", json={"content": f"Tell me of {key}"}
    )
    assert sent.status_code == 202, sent.text
    return dict(sent.json()["reply"])


async def test_two_workers_never_exceed_the_slots_and_every_api_tells_the_same_place(
    database_url: str, tmp_path: Path
) -> None:
    async with cluster(
        database_url,
        tmp_path,
        apis=2,
        workers=2,
        tokens_per_second=12,
        queue_max_per_user="20",
    ) as running:
        first, second = (api.url for api in running.apis)
        # Six people (a person's replies are written one at a time), each in a chat of
        # their own, talking to both api processes; a person's session cookie is the
        # host's, so it goes to both.
        clients = [httpx.AsyncClient(base_url=first, timeout=10) for _ in range(6)]
        try:
            chats = []
            for number, client in enumerate(clients):
                await _user(client, f"user{number}")
                chats.append(await _chat(client))
            ended = []
            for key in ("m0", "m1"):
                replies = [
                    await _send(client, (first, second)[number % 2], chat_id, key)
                    for number, (client, chat_id) in enumerate(zip(clients, chats, strict=True))
                ]
                if key == "m0":
                    await _same_place_from_every_api(clients[-1], chats[-1], first, second)
                ended += [
                    await _settle(client, chat_id, reply["id"])
                    for client, chat_id, reply in zip(clients, chats, replies, strict=True)
                ]
        finally:
            for client in clients:
                await client.aclose()
        assert [reply["status"] for reply in ended] == ["complete"] * 12
        async with httpx.AsyncClient(base_url=running.backend.url) as backend:
            stats = (await backend.get("/simulation/stats")).json()
        assert stats["requests"] >= 12
        assert stats["max_in_flight"] <= _SLOTS, stats
        assert stats["max_in_flight"] == _SLOTS, "the slots were all used"


async def _same_place_from_every_api(
    client: httpx.AsyncClient, chat_id: str, first: str, second: str
) -> None:
    """Six replies on four slots: the last sent waits. Asked through each api process
    (sending the same message again answers with its place), it is told the same
    place and estimate; asked again until nothing moved between the first and last."""
    for _ in range(20):
        places = [
            (await _send(client, url, chat_id, "m0"))["queue"] for url in (first, second, first)
        ]
        if places[0] == places[2]:
            break
    assert places[0] == places[1] == places[2], places
    assert places[0] is not None and places[0]["position"] >= 1, places
    assert places[0]["estimated_start_s"] is not None


async def _settle(client: httpx.AsyncClient, chat_id: str, reply_id: str) -> dict[str, Any]:
    for _ in range(1200):
        listed = await client.get(f"/api/v1/chats/{chat_id}/messages")
        found = next(m for m in listed.json()["items"] if m["id"] == reply_id)
        if found["status"] in _FINAL:
            return dict(found)
        await asyncio.sleep(0.1)
    raise AssertionError(f"reply {reply_id} is not final")
