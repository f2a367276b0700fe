"""A reply sent while a slot is free and nobody waits starts at once: its job is stored
already claimed by this process (no claim, no wait for the scheduler's round). Never
when someone waits in line, the user has a reply pending, or replies are paused.
SIMULATED backend."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from queue_helpers import send as _send
from queue_helpers import start_chat as _chat
from sqlalchemy import select

from conftest import Api, fleet, wait_for_reply
from personae.settings import Settings
from personae.storage.repos import chats as chat_repo
from personae.storage.tables import jobs
from personae.storage.types import utcnow

ONE_SLOW_SLOT = {"a": {"slots": 1, "tokens_per_second": 20}}


async def _job_of(api: Api, reply_id: str) -> dict[str, object]:
    async with api.container.database.read() as tx:
        row = (await tx.execute(select(jobs).where(jobs.c.message_id == reply_id))).mappings()
        return dict(row.one())


async def test_a_reply_sent_to_a_free_slot_is_stored_claimed_and_written(
    make_settings: Callable[..., Settings],
) -> None:
    async with fleet(make_settings, ONE_SLOW_SLOT, max_reply_tokens=8) as (api, _):
        client = await api.user("solo")
        chat_id = await _chat(client)
        sent = await _send(client, chat_id, "m1")
        assert sent.status_code == 202, sent.text
        assert sent.json()["reply"]["queue"] is None  # not in line: it is being written
        job = await _job_of(api, sent.json()["reply"]["id"])
        assert job["status"] in ("running", "done")
        # Not an attempt (no backend failed it) and not a takeover: its first start.
        assert job["attempts"] == 0 and job["takeovers"] == 0 and job["started_at"] is not None
        if job["status"] == "running":
            assert job["lease_owner"] == api.container.scheduler.owner
        reply = await wait_for_reply(client, chat_id, sent.json()["reply"]["id"])
        assert reply["status"] == "complete" and reply["content"]
        assert api.container.scheduler.running_count == 0


async def test_a_send_while_others_wait_joins_the_line_instead(
    make_settings: Callable[..., Settings],
) -> None:
    two_slots = {"a": {"slots": 2, "tokens_per_second": 20}}
    async with fleet(make_settings, two_slots, max_reply_tokens=20, queue_max_per_user=3) as (
        api,
        _,
    ):
        eager, other = await api.user("eager"), await api.user("other")
        running = await _send(eager, await _chat(eager), "e1")
        waiting = await _send(eager, await _chat(eager), "e2")  # waits for e1 (same user)
        assert waiting.json()["reply"]["queue"] is not None
        # A slot is free, but a reply waits: the send joins the line and the scheduler,
        # which knows the order, decides (here it may start it at once).
        joined = await _send(other, await _chat(other), "o1")
        assert joined.status_code == 202, joined.text
        assert joined.json()["reply"]["queue"] is not None
        for client, sent in ((eager, running), (eager, waiting), (other, joined)):
            reply = sent.json()["reply"]
            await wait_for_reply(client, reply["chat_id"], reply["id"], timeout_s=60)


async def test_a_user_with_a_reply_pending_waits_for_it(
    make_settings: Callable[..., Settings],
) -> None:
    two_slots = {"a": {"slots": 2, "tokens_per_second": 20}}
    async with fleet(make_settings, two_slots, max_reply_tokens=20, queue_max_per_user=3) as (
        api,
        _,
    ):
        client = await api.user("eager")
        first = await _send(client, await _chat(client), "e1")
        second = await _send(client, await _chat(client), "e2")
        # A slot is free, but one running reply per user: the second one waits.
        assert second.json()["reply"]["queue"] is not None
        assert (await _job_of(api, second.json()["reply"]["id"]))["status"] == "queued"
        for sent in (first, second):
            reply = sent.json()["reply"]
            await wait_for_reply(client, reply["chat_id"], reply["id"], timeout_s=60)


async def test_refused_and_repeated_sends_give_the_held_slot_back(
    make_settings: Callable[..., Settings],
) -> None:
    async with fleet(make_settings, ONE_SLOW_SLOT, max_reply_tokens=4, queue_max_per_user=1) as (
        api,
        _,
    ):
        client = await api.user("again")
        chat_id = await _chat(client)
        first = await _send(client, chat_id, "r1")
        again = await _send(client, chat_id, "r1")  # the same client_id: the same pair
        assert again.json()["reply"]["id"] == first.json()["reply"]["id"]
        refused = await _send(client, chat_id, "r2")  # one pending reply is this user's bound
        assert refused.status_code == 429, refused.text
        await wait_for_reply(client, chat_id, first.json()["reply"]["id"])
        # No slot stayed held by the sends above: the next reply starts and is written.
        later = await _send(client, chat_id, "r3")
        assert later.status_code == 202, later.text
        assert later.json()["reply"]["queue"] is None
        await wait_for_reply(client, chat_id, later.json()["reply"]["id"])


async def test_during_maintenance_a_reply_is_stored_and_waits(
    make_settings: Callable[..., Settings],
) -> None:
    async with fleet(make_settings, ONE_SLOW_SLOT, max_reply_tokens=4) as (api, _):
        client = await api.user("patient")
        chat_id = await _chat(client)
        now = utcnow()
        await api.container.incidents.schedule_maintenance(
            "Database upgrade",
            "Chats stay readable.",
            scheduled_for=now - timedelta(minutes=1),
            scheduled_until=now + timedelta(hours=1),
            status="in_progress",
        )
        api.container.status.forget_maintenance()
        sent = await _send(client, chat_id, "p1")
        assert sent.status_code == 202, sent.text
        assert (await _job_of(api, sent.json()["reply"]["id"]))["status"] == "queued"


async def _say(client: httpx.AsyncClient, chat_id: str, client_id: str, text: str) -> str:
    sent = await client.put(f"/api/v1/chats/{chat_id}/messages/{client_id}", json={"content": text})
    assert sent.status_code == 202, sent.text
    reply = sent.json()["reply"]
    assert reply["queue"] is None  # started at send
    await wait_for_reply(client, chat_id, reply["id"])
    return str(reply["id"])


async def test_a_reply_started_at_send_uses_what_was_read_while_the_send_was_stored(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fleet(make_settings, ONE_SLOW_SLOT, max_reply_tokens=4) as (api, urls):
        generation = api.container.scheduler._generation
        assert generation is not None
        read_again: list[str] = []
        preload_sent = generation.material.preload_sent

        async def counted(reply: Any) -> Any:
            read_again.append(reply.id)
            return await preload_sent(reply)

        monkeypatch.setattr(generation.material, "preload_sent", counted)
        client = await api.user("solo")
        chat_id = await _chat(client)
        texts = ["The first thing.", "The second thing.", "The third thing."]
        replies = [await _say(client, chat_id, f"t{n}", text) for n, text in enumerate(texts)]
        async with httpx.AsyncClient(base_url=urls["a"]) as backend:
            asked = (await backend.get("/simulation/stats")).json()["last_user_turns"]
        assert list(dict.fromkeys(asked)) == texts
        # Each prompt holds every turn so far (this character has no greeting), the new
        # message last.
        for turn, reply_id in enumerate(replies):
            prompt = (await client.get(f"/api/v1/messages/{reply_id}/prompt")).json()
            assert prompt["included"]["history"]["count"] == 1 + 2 * turn, prompt
            spoken = [part["content"] for part in prompt["parts"] if part["role"] == "user"]
            assert spoken == texts[: turn + 1]
        # The material read while each send was stored was used (read again only when
        # a send's commit came before the read began: not for all three).
        assert len(read_again) < len(texts)


async def test_a_pin_stored_while_a_send_waits_for_its_turn_to_write_is_in_the_prompt(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the reply needs is read while the send is stored; a change the prompt shows
    that lands between that read and the send's lock sends the reply to read again."""
    async with fleet(make_settings, ONE_SLOW_SLOT, max_reply_tokens=4) as (api, _urls):
        generation, chats = api.container.scheduler._generation, api.container.chats
        assert generation is not None
        client = await api.user("solo")
        chat_id = await _chat(client)
        read_for_send, store = generation.material.read_for_send, chats._store_and_queue
        pinned: list[str] = []
        pin_stored = asyncio.Event()

        async def read_then_pin(chat: str, content: str) -> Any:
            before = await read_for_send(chat, content)
            memory = await client.post(
                f"/api/v1/chats/{chat}/memories", json={"content": "Solo lives in Oslo."}
            )
            assert memory.status_code == 201, memory.text
            pinned.append(memory.json()["id"])
            pin_stored.set()
            return before

        async def store_after_the_pin(*args: Any) -> Any:
            await pin_stored.wait()
            return await store(*args)

        monkeypatch.setattr(generation.material, "read_for_send", read_then_pin)
        monkeypatch.setattr(chats, "_store_and_queue", store_after_the_pin)
        reply_id = await _say(client, chat_id, "p1", "Where do I live?")
        prompt = (await client.get(f"/api/v1/messages/{reply_id}/prompt")).json()
        assert [memory_id for memory_id, _tokens in prompt["included"]["pinned"]] == pinned


async def test_material_read_before_another_message_came_is_not_used(
    make_settings: Callable[..., Settings],
) -> None:
    async with fleet(make_settings, ONE_SLOW_SLOT, max_reply_tokens=4) as (api, _urls):
        generation = api.container.scheduler._generation
        assert generation is not None
        client = await api.user("solo")
        chat_id = await _chat(client)
        before = await generation.material.read_for_send(chat_id, "First.")
        assert before is not None
        first = await _say(client, chat_id, "n1", "First.")
        second = await _say(client, chat_id, "n2", "Second.")
        async with api.container.database.read() as tx:
            records = {}
            for reply_id in (first, second):
                reply = await chat_repo.get_message(tx, reply_id)
                assert reply is not None and reply.parent_id is not None
                records[reply_id] = (await chat_repo.get_message(tx, reply.parent_id), reply)
        message, reply = records[first]
        assert message is not None
        used = generation.material.sent_material(before, message, reply, before.chat)
        assert used is not None and used.context.history[-1].id == message.id
        # The second message came after another: what was read before both lacks it.
        message, reply = records[second]
        assert message is not None
        assert generation.material.sent_material(before, message, reply, before.chat) is None


async def test_no_slot_is_held_for_a_send_while_the_line_may_not_be_empty(
    make_settings: Callable[..., Settings],
) -> None:
    """Under load a freed slot is the next reply's: a send that held it (and then joined
    the line) would keep it idle, and sends arriving one after another would starve
    the line."""
    async with fleet(make_settings, ONE_SLOW_SLOT, max_reply_tokens=4) as (api, _urls):
        scheduler = api.container.scheduler
        client = await api.user("solo")
        chat_id = await _chat(client)
        api_user_id = (await client.get("/api/v1/me")).json()["id"]
        await _say(client, chat_id, "s1", "First.")  # the line was found empty
        held = await scheduler.hold_slot(chat_id, api_user_id, "Second.")
        assert held is not None
        scheduler.release_slot(held)
        scheduler.job_queued()  # something joined the line: until a claim finds it empty
        assert await scheduler.hold_slot(chat_id, api_user_id, "Second.") is None
        for _ in range(100):  # the scheduler's next round claims nothing
            held = await scheduler.hold_slot(chat_id, api_user_id, "Second.")
            if held is not None:
                break
            await asyncio.sleep(0.05)
        assert held is not None
        scheduler.release_slot(held)
