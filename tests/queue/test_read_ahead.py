"""The next reply is read ahead while every slot is busy; what changed since is not lost."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from queue_helpers import watch_aheads, watch_runs

from conftest import fleet, wait_for_reply
from personae.settings import Settings

# 15 tokens at 10 a second: the blocker's reply takes about 1.5 s, less than the
# read-ahead's shelf life, so a stale read-ahead would be used if nothing checked it.
ONE_SLOW_SLOT = {"a": {"slots": 1, "tokens_per_second": 10}}


async def _send(client: httpx.AsyncClient, text: str) -> dict[str, str]:
    character = await client.post("/api/v1/characters", json={"name": "Bramble"})
    chat = await client.post("/api/v1/chats", json={"character_id": character.json()["id"]})
    chat_id = chat.json()["id"]
    sent = await client.put(f"/api/v1/chats/{chat_id}/messages/m1", json={"content": text})
    assert sent.status_code == 202, sent.text
    body = sent.json()
    return {"chat": chat_id, "message": body["message"]["id"], "reply": body["reply"]["id"]}


async def test_an_edit_made_while_the_reply_waits_is_what_the_reply_answers(
    make_settings: Callable[..., Settings],
) -> None:
    async with fleet(make_settings, ONE_SLOW_SLOT, max_reply_tokens=15) as (api, urls):
        blocker, ursula = await api.user("blocker"), await api.user("ursula")
        first = await _send(blocker, "Tell me a story.")
        waiting = await _send(ursula, "Tell me about the sun.")
        # The blocker's reply holds the only slot; ursula's is next and is read ahead.
        await asyncio.sleep(0.4)
        edited = await ursula.patch(
            f"/api/v1/messages/{waiting['message']}", json={"content": "Tell me about the moon."}
        )
        assert edited.status_code == 200, edited.text
        reply = await wait_for_reply(ursula, waiting["chat"], waiting["reply"], timeout_s=60)
        await wait_for_reply(blocker, first["chat"], first["reply"], timeout_s=60)
        assert reply["status"] == "complete"
        async with httpx.AsyncClient(base_url=urls["a"]) as backend:
            asked = (await backend.get("/simulation/stats")).json()["answered_user_turns"]
        # (A reply the quality gate rejects is asked again: compare each text once. A
        # stream begun ahead of a claim, then let go of, is not answered.)
        assert list(dict.fromkeys(asked)) == ["Tell me a story.", "Tell me about the moon."]


async def test_a_more_urgent_reply_overtakes_the_one_read_ahead(
    make_settings: Callable[..., Settings],
) -> None:
    async with fleet(make_settings, ONE_SLOW_SLOT, max_reply_tokens=15) as (api, urls):
        blocker, ursula, petra = [await api.user(n) for n in ("blocker", "ursula", "petra")]
        await api.container.accounts.set_role("petra", "plus")
        sent = [await _send(blocker, "First."), await _send(ursula, "Second.")]
        await asyncio.sleep(0.4)  # ursula's reply, at the head of the line, is read ahead
        sent.append(await _send(petra, "Third, but paying."))
        for client, ids in zip((blocker, ursula, petra), sent, strict=True):
            await wait_for_reply(client, ids["chat"], ids["reply"], timeout_s=60)
        async with httpx.AsyncClient(base_url=urls["a"]) as backend:
            asked = (await backend.get("/simulation/stats")).json()["answered_user_turns"]
        assert list(dict.fromkeys(asked)) == ["First.", "Third, but paying.", "Second."]


async def test_a_fact_pinned_while_the_reply_waits_is_in_its_prompt(
    make_settings: Callable[..., Settings],
) -> None:
    async with fleet(make_settings, ONE_SLOW_SLOT, max_reply_tokens=15) as (api, _urls):
        blocker, ursula = await api.user("blocker"), await api.user("ursula")
        first = await _send(blocker, "Tell me a story.")
        waiting = await _send(ursula, "Where do I live?")
        await asyncio.sleep(0.4)  # ursula's reply is read ahead while the blocker's is written
        pinned = await ursula.post(
            f"/api/v1/chats/{waiting['chat']}/memories", json={"content": "Ursula lives in Oslo."}
        )
        assert pinned.status_code == 201, pinned.text
        await wait_for_reply(ursula, waiting["chat"], waiting["reply"], timeout_s=60)
        await wait_for_reply(blocker, first["chat"], first["reply"], timeout_s=60)
        prompt = (await ursula.get(f"/api/v1/messages/{waiting['reply']}/prompt")).json()
        assert [memory_id for memory_id, _tokens in prompt["included"]["pinned"]] == [
            pinned.json()["id"]
        ]


async def test_a_new_message_after_the_waiting_reply_keeps_its_read_ahead_current(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fleet(make_settings, ONE_SLOW_SLOT, max_reply_tokens=15, queue_max_per_user=2) as (
        api,
        urls,
    ):
        generation = api.container.scheduler._generation
        assert generation is not None
        current: dict[str, bool] = {}

        def look(job: Any, preloaded: Any, changed: Any, _ahead: Any) -> None:
            fresh = preloaded is not None and preloaded.context.chat.prompt_version == changed
            current[job.message_id] = fresh

        watch_runs(monkeypatch, generation, look)
        blocker, ursula = await api.user("blocker"), await api.user("ursula")
        first = await _send(blocker, "Tell me a story.")
        waiting = await _send(ursula, "Tell me about the sun.")
        await asyncio.sleep(0.4)  # ursula's reply, at the head of the line, is read ahead
        # Another message in the same chat, after the waiting reply: the chat changed,
        # but not the waiting reply's prompt.
        later = await ursula.put(
            f"/api/v1/chats/{waiting['chat']}/messages/m2", json={"content": "And the stars?"}
        )
        assert later.status_code == 202, later.text
        reply = await wait_for_reply(ursula, waiting["chat"], waiting["reply"], timeout_s=60)
        await wait_for_reply(blocker, first["chat"], first["reply"], timeout_s=60)
        assert reply["status"] == "complete"
        assert current[waiting["reply"]] is True
        async with httpx.AsyncClient(base_url=urls["a"]) as backend:
            asked = (await backend.get("/simulation/stats")).json()["answered_user_turns"]
        assert "Tell me about the sun." in asked


async def test_the_next_reply_streams_while_its_claim_is_stored(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The head of the line's stream begins from its read-ahead when the slot frees, and
    # the reply is written from that stream once the claim gives it this process.
    async with fleet(make_settings, ONE_SLOW_SLOT, max_reply_tokens=15) as (api, urls):
        generation = api.container.scheduler._generation
        assert generation is not None
        taken = watch_aheads(monkeypatch, generation)
        blocker, ursula = await api.user("blocker"), await api.user("ursula")
        first = await _send(blocker, "Tell me a story.")
        waiting = await _send(ursula, "Tell me about the sun.")
        reply = await wait_for_reply(ursula, waiting["chat"], waiting["reply"], timeout_s=60)
        await wait_for_reply(blocker, first["chat"], first["reply"], timeout_s=60)
        assert reply["status"] == "complete" and reply["content"]
        assert taken[waiting["reply"]] is True
        async with httpx.AsyncClient(base_url=urls["a"]) as backend:
            stats = (await backend.get("/simulation/stats")).json()
        # Each asked once: the stream begun ahead was the one used.
        assert stats["last_user_turns"] == ["Tell me a story.", "Tell me about the sun."]
        assert stats["active"] == 0
        assert all(backend.in_flight == 0 for backend in api.container.router.backends)
