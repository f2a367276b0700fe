"""Shared pieces of the memory tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from personae.container import Container
from personae.services.memory import RECALL_INDEX_JOB
from personae.storage.repos import chats as chat_repo
from personae.storage.repos import memories as memory_repo

BOOK = {
    "name": "Harbour lore",
    "scan_depth": 2,
    "token_budget": 400,
    "entries": [
        {
            "keys": ["lighthouse"],
            "content": "LORE-LIGHTHOUSE: the lighthouse has been dark for ten years.",
            "enabled": True,
            "insertion_order": 1,
            "id": 1,
            "position": "after_char",
        },
        {
            "keys": ["kraken"],
            "content": "LORE-KRAKEN: nobody has seen the kraken since the war.",
            "enabled": True,
            "insertion_order": 2,
            "id": 2,
        },
        {
            "keys": [],
            "content": "LORE-ALWAYS: the town is called Saltmere.",
            "constant": True,
            "enabled": True,
            "insertion_order": 0,
            "id": 3,
            "position": "before_char",
        },
    ],
}

CARD = {
    "spec": "chara_card_v2",
    "spec_version": "2.0",
    "data": {
        "name": "Ilsa",
        "description": "Ilsa is a harbour pilot who calls {{user}} by name.",
        "personality": "dry",
        "scenario": "",
        "first_mes": "Hello, {{user}}.",
        "mes_example": "",
        "character_book": BOOK,
    },
}


async def import_character(client: httpx.AsyncClient, card: dict[str, Any] = CARD) -> str:
    response = await client.post(
        "/api/v1/characters/import", files={"file": ("card.json", json.dumps(card).encode())}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def start_chat(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    if "character_id" not in body:
        body["character_id"] = await import_character(client)
    response = await client.post("/api/v1/chats", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def fill_history(container: Container, chat_id: str, texts: list[str]) -> None:
    """Store finished user/assistant turns straight through the repo layer (fast)."""
    async with container.database.write() as tx:
        chat = await chat_repo.lock_chat(tx, chat_id)
        assert chat is not None
        first = await chat_repo.reserve_positions(tx, chat, len(texts))
        for offset, text in enumerate(texts):
            position = first + offset
            await chat_repo.insert_message(
                tx,
                chat_id=chat_id,
                role="user" if position % 2 else "assistant",
                position=position,
                content=text,
                status="complete",
                author_id=chat.owner_id if position % 2 else None,
            )


async def wait_until_indexed(container: Container, chat_id: str, timeout_s: float = 120) -> None:
    """Wait for the chat's background indexing job (queued by a reply's prompt) to end."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        async with container.database.read() as tx:
            if not await memory_repo.has_open_job(tx, chat_id, RECALL_INDEX_JOB):
                return
        assert loop.time() < deadline, "the recall index job did not end"
        await asyncio.sleep(0.1)
