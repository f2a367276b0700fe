"""What the waiting-room tests share: a chat to send in, and a send."""

from __future__ import annotations

import httpx


async def start_chat(client: httpx.AsyncClient) -> str:
    """A new chat with a new character; returns its id."""
    character = await client.post("/api/v1/characters", json={"name": "Bramble"})
    chat = await client.post("/api/v1/chats", json={"character_id": character.json()["id"]})
    return str(chat.json()["id"])


async def send(client: httpx.AsyncClient, chat_id: str, client_id: str) -> httpx.Response:
    return await client.put(
        f"/api/v1/chats/{chat_id}/messages/{client_id}", json={"content": "hello"}
    )
