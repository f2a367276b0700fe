"""Helpers of the read-aloud tests: an app whose replies stream from a SIMULATED chat
backend and whose speech comes from the real Piper engine (or, for load and fault
tests, the SIMULATED speech engine), and reading the chat stream's events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from conftest import Api, fleet
from personae.errors import UnknownVoice
from personae.events.base import Event
from personae.services.chat_events import chat_stream
from personae.settings import Settings
from personae.voice.base import SpeechEngine, VoiceChoice
from personae.voice.factory import VoiceEngines
from personae.voice.simulated import VOICE, SimulatedSpeechEngine


@asynccontextmanager
async def speaking_app(
    make_settings: Callable[..., Settings],
    voice_models_dir: Path,
    *,
    tokens_per_second: float = 1000.0,
    **settings: Any,
) -> AsyncIterator[tuple[Api, str]]:
    """An app (and its simulated chat backend's URL) that speaks with the real voices."""
    values: dict[str, Any] = {
        "voice_dir": voice_models_dir,
        "max_reply_tokens": 200,
        "send_rate_per_user": "1000/minute",
        "queue_max_per_user": 100,
    }
    values.update(settings)
    backends = {"sim": {"tokens_per_second": tokens_per_second, "slots": 4}}
    async with fleet(make_settings, backends, **values) as (api, urls):
        yield api, urls["sim"]


async def script(backend_url: str, text: str, count: int = 1) -> None:
    """The next replies of the simulated backend say `text`, word by word."""
    async with httpx.AsyncClient() as client:
        armed = await client.post(
            f"{backend_url}/simulation/faults",
            json={"mode": "script", "text": text, "count": count},
        )
        assert armed.status_code == 200, armed.text


async def chat_with(user: httpx.AsyncClient, **character: Any) -> str:
    made = await user.post("/api/v1/characters", json={"name": "Fox", **character})
    assert made.status_code == 201, made.text
    chat = await user.post("/api/v1/chats", json={"character_id": made.json()["id"]})
    assert chat.status_code == 201, chat.text
    return str(chat.json()["id"])


async def send(user: httpx.AsyncClient, chat_id: str, client_id: str, text: str) -> dict[str, Any]:
    sent = await user.put(f"/api/v1/chats/{chat_id}/messages/{client_id}", json={"content": text})
    assert sent.status_code == 202, sent.text
    body: dict[str, Any] = sent.json()
    return body


async def events_until(
    api: Api, chat_id: str, done: Callable[[list[Event]], bool], timeout_s: float = 90.0
) -> list[Event]:
    """The chat stream's events from its start until `done(events)` holds."""
    seen: list[Event] = []
    cursor: str | None = None
    deadline = time.monotonic() + timeout_s
    while not done(seen):
        assert time.monotonic() < deadline, [(e.name, e.data) for e in seen][-20:]
        batch = await api.container.events.read(chat_stream(chat_id), cursor, wait_s=1.0)
        for event in batch:
            cursor = event.id
            seen.append(event)
    return seen


def named(events: list[Event], name: str, message_id: str) -> list[Event]:
    return [
        e
        for e in events
        if e.name == name and (e.data.get("message_id") or e.data.get("id")) == message_id
    ]


async def until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Wait for a condition of the running app (checked as the loop turns)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.01)


class SimulatedVoiceEngines(VoiceEngines):
    """The engines with only the SIMULATED speech engine, for load and fault tests."""

    def __init__(self, settings: Settings, engine: SimulatedSpeechEngine) -> None:
        super().__init__(settings, installed=True)
        self.simulated = engine

    def engine_names(self) -> list[str]:
        return [self.simulated.name]

    def engine_ready(self, name: str) -> bool:
        return name == self.simulated.name

    def blendable(self, name: str) -> bool:
        return False

    def engine(self, name: str) -> SpeechEngine:
        if name != self.simulated.name:
            raise UnknownVoice(f"no engine {name!r} in this simulation")
        return self.simulated

    def default_choice(self) -> VoiceChoice:
        return VoiceChoice(self.simulated.name, VOICE)
