"""The chat's live stream over a real HTTP server: tokens, resume, restart, heartbeats."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from conftest import PASSWORD, REDIS_URL, serve_app
from personae.app import create_app
from personae.settings import Settings


@dataclass
class Sse:
    id: str | None
    name: str
    data: dict[str, Any]


async def _events(response: httpx.Response) -> AsyncIterator[Sse | None]:
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


async def _read_until_final(
    client: httpx.AsyncClient, chat_id: str, reply_id: str, headers: dict[str, str] | None = None
) -> list[Sse]:
    seen: list[Sse] = []
    async with client.stream(
        "GET", f"/api/v1/chats/{chat_id}/events", headers=headers or {}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for event in _events(response):
            if event is None:
                continue
            seen.append(event)
            data = event.data
            if (
                event.name == "reply_state"
                and data["id"] == reply_id
                and data["status"] in {"complete", "failed", "stopped"}
            ):
                return seen
    raise AssertionError("the stream ended before the reply did")


async def _logged_in(url: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=url, timeout=120)
    registered = await client.post(
        "/api/v1/auth/register", json={"username": "alice", "password": PASSWORD}
    )
    client.headers["X-CSRF-Token"] = registered.json()["csrf_token"]
    return client


async def _chat(client: httpx.AsyncClient) -> str:
    character = await client.post("/api/v1/characters", json={"name": "Bramble"})
    chat = await client.post("/api/v1/chats", json={"character_id": character.json()["id"]})
    return str(chat.json()["id"])


def _replayed_text(events: list[Sse], reply_id: str) -> str:
    """Apply token events by offset, as a client does (a snapshot resets the text)."""
    text = ""
    for event in events:
        if event.name == "reply_state" and event.data["id"] == reply_id:
            text = event.data["content"]
        elif event.name == "token" and event.data["message_id"] == reply_id:
            offset = event.data["offset"]
            text = text[:offset] + event.data["text"]
    return text


async def test_tokens_stream_live_and_a_reconnect_gets_exactly_what_it_missed(
    model_settings: Callable[..., Settings],
) -> None:
    app = create_app(model_settings(max_reply_tokens=40))
    async with serve_app(app) as url:
        alice = await _logged_in(url)
        chat_id = await _chat(alice)
        reading = asyncio.create_task(_read_until_final_after_send(alice, chat_id))
        events, reply_id = await reading
        tokens = [e for e in events if e.name == "token"]
        assert len(tokens) > 3
        ids = [e.id for e in events]
        assert all(ids), "every live event has an id"
        assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in i.split("-")))
        final = events[-1].data
        assert _replayed_text(events, reply_id) == final["content"]

        middle = tokens[len(tokens) // 2]
        resumed = await _read_until_final(
            alice, chat_id, reply_id, headers={"Last-Event-ID": str(middle.id)}
        )
        expected = [e.id for e in events[events.index(middle) + 1 :]]
        assert [e.id for e in resumed] == expected
        await alice.aclose()


async def _read_until_final_after_send(
    client: httpx.AsyncClient, chat_id: str
) -> tuple[list[Sse], str]:
    seen: list[Sse] = []
    reply_id = ""
    async with client.stream("GET", f"/api/v1/chats/{chat_id}/events") as response:
        sent = await client.put(
            f"/api/v1/chats/{chat_id}/messages/s1", json={"content": "Tell me about tea."}
        )
        reply_id = sent.json()["reply"]["id"]
        async for event in _events(response):
            if event is None:
                continue
            seen.append(event)
            if (
                event.name == "reply_state"
                and event.data["id"] == reply_id
                and event.data["status"] == "complete"
            ):
                return seen, reply_id
    raise AssertionError("stream ended early")


async def test_after_a_restart_missed_events_are_replaced_by_the_stored_text(
    model_settings: Callable[..., Settings],
) -> None:
    settings = model_settings(max_reply_tokens=32)
    first = create_app(settings)
    async with serve_app(first) as url:
        alice = await _logged_in(url)
        chat_id = await _chat(alice)
        events, reply_id = await _read_until_final_after_send(alice, chat_id)
        cookies, csrf = alice.cookies, alice.headers["X-CSRF-Token"]
        await alice.aclose()
    early = next(e for e in events if e.name == "token")

    second = create_app(settings)  # same database, a new (empty) in-memory event log
    async with serve_app(second) as url:
        client = httpx.AsyncClient(base_url=url, cookies=cookies, timeout=60)
        client.headers["X-CSRF-Token"] = csrf
        resumed = await _read_until_final(
            client, chat_id, reply_id, headers={"Last-Event-ID": str(early.id)}
        )
        await client.aclose()
    state = resumed[-1]
    if REDIS_URL is None:
        assert state.id is None, "the new in-memory log rebuilt the state from the database"
    else:
        assert state.id == events[-1].id, "the Redis log outlived the server: exact replay"
    assert state.data["content"] == events[-1].data["content"]
    assert state.data["status"] == "complete"


async def test_heartbeats_keep_an_idle_stream_open(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(sse_heartbeat_s=0.1))
    async with serve_app(app) as url:
        alice = await _logged_in(url)
        chat_id = await _chat(alice)
        beats = 0
        async with alice.stream("GET", f"/api/v1/chats/{chat_id}/events") as response:
            async for event in _events(response):
                if event is None:
                    beats += 1
                if beats >= 3:
                    break
        await alice.aclose()
    assert beats >= 3


async def test_a_waiting_reply_is_told_its_place_in_line(
    model_settings: Callable[..., Settings],
) -> None:
    app = create_app(model_settings(backend_slots=1, max_reply_tokens=64))
    async with serve_app(app) as url:
        alice = await _logged_in(url)
        first_chat, second_chat = await _chat(alice), await _chat(alice)
        await alice.put(f"/api/v1/chats/{first_chat}/messages/a", json={"content": "Hello!"})
        async with alice.stream("GET", f"/api/v1/chats/{second_chat}/events") as response:
            sent = await alice.put(
                f"/api/v1/chats/{second_chat}/messages/b", json={"content": "Hi!"}
            )
            reply = sent.json()["reply"]
            assert reply["queue"]["position"] >= 1
            assert reply["queue"]["estimated_start_s"] > 0
            async for event in _events(response):
                if event is not None and event.name == "queue":
                    assert event.data["message_id"] == reply["id"]
                    assert event.data["position"] >= 1
                    break
        await alice.aclose()


async def test_an_idle_stream_outlasts_the_redis_command_timeout(
    make_settings: Callable[..., Settings],
) -> None:
    """A stream's read waits its whole block: quiet longer than a command may take is no failure."""
    app = create_app(make_settings(sse_heartbeat_s=1.0, redis_timeout_s=0.3))
    async with serve_app(app) as url:
        alice = await _logged_in(url)
        chat_id = await _chat(alice)
        beats = 0
        async with alice.stream("GET", f"/api/v1/chats/{chat_id}/events") as response:
            async for event in _events(response):
                if event is None:
                    beats += 1
                if beats >= 2:
                    break
        await alice.aclose()
    assert beats >= 2
