"""What the waiting-room tests share: a chat to send in, a send, and a look at the
replies the scheduler runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from personae.services.generation import GenerationService


async def start_chat(client: httpx.AsyncClient) -> str:
    """A new chat with a new character; returns its id."""
    character = await client.post("/api/v1/characters", json={"name": "Bramble"})
    chat = await client.post("/api/v1/chats", json={"character_id": character.json()["id"]})
    return str(chat.json()["id"])


async def send(client: httpx.AsyncClient, chat_id: str, client_id: str) -> httpx.Response:
    return await client.put(
        f"/api/v1/chats/{chat_id}/messages/{client_id}", json={"content": "hello"}
    )


def watch_runs(
    monkeypatch: pytest.MonkeyPatch,
    generation: GenerationService,
    look: Callable[[Any, Any, Any, Any], None],
) -> None:
    """Call `look(job, preloaded, chat_changed_at, ahead)` as each job begins to run."""
    run = generation.run

    async def watched(
        job: Any, control: Any, preloaded: Any = None, changed: Any = None, ahead: Any = None
    ) -> Any:
        look(job, preloaded, changed, ahead)
        return await run(job, control, preloaded, changed, ahead)

    monkeypatch.setattr(generation, "run", watched)


def watch_aheads(monkeypatch: pytest.MonkeyPatch, generation: GenerationService) -> dict[str, bool]:
    """By reply id: whether its job was given a stream begun ahead of it (taken up if
    that stream was asked the reply's very prompt)."""
    taken: dict[str, bool] = {}

    def look(job: Any, _preloaded: Any, _changed: Any, ahead: Any) -> None:
        taken[job.message_id] = ahead is not None

    watch_runs(monkeypatch, generation, look)
    return taken
