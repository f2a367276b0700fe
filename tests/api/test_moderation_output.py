"""Moderation of replies as they stream: a SIMULATED backend scripted to say an
offending sentence mid-reply; the reply ends `filtered` with its category, the
sentences before it kept, the rest neither stored nor in the final state, the live
stream ending the reply cleanly (a final reply_state, no error), and another reply
can be asked for."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx

from conftest import PASSWORD, serve_app, simulated_backend, wait_for_reply
from personae.app import create_app
from personae.settings import Settings

KEPT = "The lanterns glow over the river."
SCRIPT = f"{KEPT} You should kill yourself now, stranger. The mill is quiet tonight."


async def _collect(
    client: httpx.AsyncClient, chat_id: str, seen: list[tuple[str, dict[str, Any]]]
) -> None:
    """Read the chat's SSE stream into `seen` until the task is cancelled."""
    async with client.stream("GET", f"/api/v1/chats/{chat_id}/events") as response:
        assert response.status_code == 200
        fields: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line == "":
                if "event" in fields:
                    seen.append((fields["event"], json.loads(fields["data"])))
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value


async def _until(predicate: Callable[[], bool], timeout_s: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_reply_crossing_a_line_ends_filtered_keeping_the_sentences_before(
    make_settings: Callable[..., Settings],
) -> None:
    async with simulated_backend(name="sim", tokens_per_second=100) as backend_url:
        settings = make_settings(
            backend_url=None,
            backends=[f"sim={backend_url},slots=2,role=primary"],
            backend_probe_interval_s=0,
            max_reply_tokens=40,
            sse_heartbeat_s=0.5,
        )
        async with (
            serve_app(create_app(settings)) as url,
            httpx.AsyncClient(base_url=url, timeout=60) as client,
        ):
            registered = await client.post(
                "/api/v1/auth/register", json={"username": "alice", "password": PASSWORD}
            )
            client.headers["X-CSRF-Token"] = registered.json()["csrf_token"]
            character = await client.post("/api/v1/characters", json={"name": "Bramble"})
            chat = await client.post("/api/v1/chats", json={"character_id": character.json()["id"]})
            chat_id = chat.json()["id"]
            async with httpx.AsyncClient(base_url=backend_url) as sim:
                armed = await sim.post(
                    "/simulation/faults", json={"mode": "script", "text": SCRIPT, "count": 1}
                )
                armed.raise_for_status()
            seen: list[tuple[str, dict[str, Any]]] = []
            reader = asyncio.create_task(_collect(client, chat_id, seen))
            await asyncio.sleep(0.5)  # the stream is open before the reply starts
            sent = await client.put(
                f"/api/v1/chats/{chat_id}/messages/m1", json={"content": "Tell me a story."}
            )
            assert sent.status_code == 202, sent.text
            reply_id = sent.json()["reply"]["id"]

            def ended() -> bool:
                return any(
                    name == "reply_state" and d["id"] == reply_id and d["status"] == "filtered"
                    for name, d in seen
                )

            await _until(ended)
            await asyncio.sleep(1.2)  # the stream goes on after it (heartbeats, no error)
            assert not reader.done(), reader
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

            final = [d for n, d in seen if n == "reply_state" and d["id"] == reply_id][-1]
            assert final["status"] == "filtered"
            assert final["filtered_category"] == "harassment"
            assert final["content"] == KEPT
            assert not [d for n, d in seen if n == "error"]
            # The later sentence was never written: the stream was cut at the offence.
            streamed = "".join(d["text"] for n, d in seen if n == "token")
            assert "quiet" not in streamed

            stored = await wait_for_reply(client, chat_id, reply_id, statuses={"filtered"})
            assert stored["content"] == KEPT
            assert stored["filtered_category"] == "harassment"
            assert "kill" not in stored["content"]

            # Regenerate: another reply beside it (the simulated words this time).
            swiped = await client.post(f"/api/v1/messages/{reply_id}/swipes")
            assert swiped.status_code == 202, swiped.text
            again = await wait_for_reply(client, chat_id, swiped.json()["id"])
            assert again["status"] == "complete" and again["filtered_category"] is None

            metrics = (await client.get("/metrics")).text
            assert (
                'personae_moderation_actions_total{action="filtered",category="harassment",'
                'direction="output"} 1.0'
            ) in metrics
            assert 'personae_replies_total{state="filtered"} 1.0' in metrics
