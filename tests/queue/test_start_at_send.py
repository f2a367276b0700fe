"""A reply sent while a slot is free and nobody waits starts at once: its job is stored
already claimed by this process (no claim, no wait for the scheduler's round). Never
when someone waits in line, the user has a reply pending, or replies are paused.
SIMULATED backend."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from queue_helpers import send as _send
from queue_helpers import start_chat as _chat
from sqlalchemy import select

from conftest import Api, fleet, wait_for_reply
from personae.settings import Settings
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
        assert job["attempts"] == 1 and job["started_at"] is not None
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
