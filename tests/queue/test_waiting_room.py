"""The waiting room: tiers, FIFO, no starvation, fairness, bounds and rate limits, with a
SIMULATED backend of one slot so that a line forms."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from queue_helpers import send as _send
from queue_helpers import start_chat as _chat
from sqlalchemy import select

from conftest import Api, assert_problem, fleet, wait_for_reply
from personae.settings import Settings
from personae.storage.tables import jobs

# Slow enough that a line forms before the first reply ends, even on a busy machine.
ONE_VERY_SLOW_SLOT = {"a": {"slots": 1, "tokens_per_second": 10}}


async def _users(api: Api, names: list[str], plus: set[str] = frozenset()) -> dict[str, Any]:
    clients = {}
    for name in names:
        clients[name] = await api.user(name)
        if name in plus:
            await api.container.accounts.set_role(name, "plus")
    return clients


async def _started_order(api: Api, reply_ids: dict[str, str]) -> list[str]:
    """Names in the order their reply jobs started (from the job rows)."""
    async with api.container.database.read() as tx:
        rows = (await tx.execute(select(jobs.c.message_id, jobs.c.started_at))).all()
    started = {message_id: at for message_id, at in rows}
    return sorted(reply_ids, key=lambda name: started[reply_ids[name]])


async def _line_up(
    api: Api, clients: dict[str, httpx.AsyncClient], order: list[str], pause_s: float = 0.0
) -> dict[str, str]:
    reply_ids = {}
    for name in order:
        answer = await _send(clients[name], await _chat(clients[name]), f"{name}-1")
        assert answer.status_code == 202, answer.text
        reply_ids[name] = answer.json()["reply"]["id"]
        await asyncio.sleep(pause_s)
    return reply_ids


async def _all_done(
    clients: dict[str, httpx.AsyncClient], api: Api, reply_ids: dict[str, str]
) -> None:
    async with api.container.database.read() as tx:
        rows = (await tx.execute(select(jobs.c.message_id, jobs.c.chat_id))).all()
    chat_of = dict(rows)
    for name, reply_id in reply_ids.items():
        await wait_for_reply(clients[name], chat_of[reply_id], reply_id, timeout_s=60)


async def test_plus_goes_before_user_and_each_tier_is_first_come_first_served(
    make_settings: Callable[..., Settings],
) -> None:
    async with fleet(make_settings, ONE_VERY_SLOW_SLOT, max_reply_tokens=10) as (api, _):
        clients = await _users(
            api, ["blocker", "ursula", "ulrich", "petra", "paolo"], plus={"petra", "paolo"}
        )
        reply_ids = await _line_up(api, clients, ["blocker", "ursula", "ulrich", "petra", "paolo"])
        await _all_done(clients, api, reply_ids)
        assert await _started_order(api, reply_ids) == [
            "blocker",
            "petra",
            "paolo",
            "ursula",
            "ulrich",
        ]


async def test_a_reply_that_waited_past_the_bound_goes_first_whatever_its_tier(
    make_settings: Callable[..., Settings],
) -> None:
    async with fleet(
        make_settings, ONE_VERY_SLOW_SLOT, max_reply_tokens=20, queue_max_wait_s=0.3
    ) as (
        api,
        _,
    ):
        clients = await _users(api, ["blocker", "ursula", "petra"], plus={"petra"})
        reply_ids = await _line_up(api, clients, ["blocker", "ursula"], pause_s=0.4)
        reply_ids |= await _line_up(api, clients, ["petra"])
        await _all_done(clients, api, reply_ids)
        assert await _started_order(api, reply_ids) == ["blocker", "ursula", "petra"]


async def test_one_running_reply_per_user(make_settings: Callable[..., Settings]) -> None:
    async with fleet(make_settings, {"a": {"slots": 4, "tokens_per_second": 40}}) as (api, _):
        alice = await api.user("alice")
        first = await _send(alice, chat_a := await _chat(alice), "one")
        second = await _send(alice, chat_b := await _chat(alice), "two")
        await wait_for_reply(alice, chat_a, first.json()["reply"]["id"])
        await wait_for_reply(alice, chat_b, second.json()["reply"]["id"])
        async with api.container.database.read() as tx:
            rows = {
                m: (s, f)
                for m, s, f in (
                    await tx.execute(
                        select(jobs.c.message_id, jobs.c.started_at, jobs.c.finished_at)
                    )
                ).all()
            }
        _, first_finished = rows[first.json()["reply"]["id"]]
        second_started, _ = rows[second.json()["reply"]["id"]]
        assert second_started >= first_finished, "the second waited for the first"


async def test_past_the_per_user_bound_a_send_is_refused_but_stored_and_a_resend_works(
    make_settings: Callable[..., Settings],
) -> None:
    # Each reply takes 2 s: the first is still running when the third is sent, even on
    # a busy machine.
    async with fleet(
        make_settings, ONE_VERY_SLOW_SLOT, queue_max_per_user=2, max_reply_tokens=20
    ) as (
        api,
        _,
    ):
        alice = await api.user("alice")
        chats = [await _chat(alice) for _ in range(3)]
        first = await _send(alice, chats[0], "m0")
        second = await _send(alice, chats[1], "m1")
        refused = await _send(alice, chats[2], "m2")
        body = assert_problem(refused, 429, "too_many_pending_replies")
        assert int(refused.headers["Retry-After"]) >= 1
        assert body["message"]["status"] == "waiting"
        stored = (await alice.get(f"/api/v1/chats/{chats[2]}/messages")).json()["items"]
        assert [(m["content"], m["status"]) for m in stored if m["role"] == "user"] == [
            ("hello", "waiting")
        ]
        await wait_for_reply(alice, chats[0], first.json()["reply"]["id"])
        await wait_for_reply(alice, chats[1], second.json()["reply"]["id"])
        again = await _send(alice, chats[2], "m2")
        assert again.status_code == 202, again.text
        assert again.json()["message"]["id"] == body["message"]["id"]
        reply = await wait_for_reply(alice, chats[2], again.json()["reply"]["id"])
        assert reply["status"] == "complete"


async def test_past_the_queue_bound_a_send_gets_503_with_retry_after_and_is_kept(
    make_settings: Callable[..., Settings],
) -> None:
    # The blocker's reply takes 4 s: the line is still the waiter alone when the late
    # one sends, even on a busy machine.
    async with fleet(
        make_settings, ONE_VERY_SLOW_SLOT, queue_max_length=1, max_reply_tokens=40
    ) as (
        api,
        _,
    ):
        clients = await _users(api, ["blocker", "waiter", "late"])
        await _line_up(api, clients, ["blocker"])
        await asyncio.sleep(0.3)  # the blocker's reply is being written: the line is empty
        await _line_up(api, clients, ["waiter"])
        chat_id = await _chat(clients["late"])
        refused = await _send(clients["late"], chat_id, "late-1")
        body = assert_problem(refused, 503, "queue_full")
        assert body["retryable"] is True
        assert int(refused.headers["Retry-After"]) >= 1
        stored = (await clients["late"].get(f"/api/v1/chats/{chat_id}/messages")).json()["items"]
        assert [m["status"] for m in stored if m["role"] == "user"] == ["waiting"]


async def test_sends_past_the_rate_limit_get_429_and_are_not_stored(
    make_settings: Callable[..., Settings],
) -> None:
    async with fleet(make_settings, {"a": {}}, send_rate_per_user="2/minute") as (api, _):
        alice = await api.user("alice")
        chat_id = await _chat(alice)
        for number in range(2):
            assert (await _send(alice, chat_id, f"r{number}")).status_code == 202
        limited = await _send(alice, chat_id, "r2")
        assert_problem(limited, 429, "rate_limited")
        assert int(limited.headers["Retry-After"]) >= 1
        stored = (await alice.get(f"/api/v1/chats/{chat_id}/messages")).json()["items"]
        assert "r2" not in [m["client_id"] for m in stored]


async def test_positions_move_as_the_line_moves_and_the_queue_view_shows_it(
    make_settings: Callable[..., Settings],
) -> None:
    # The blocker's reply (6 s) outlasts forming the line even on a busy machine; the
    # line then moves when it ends, not after a fixed sleep.
    async with fleet(make_settings, ONE_VERY_SLOW_SLOT, max_reply_tokens=60) as (api, _):
        clients = await _users(api, ["blocker", "ursula", "ulrich", "uma"])
        await api.container.accounts.set_role("uma", "admin")
        blocker_reply = (await _line_up(api, clients, ["blocker"]))["blocker"]
        await asyncio.sleep(0.2)
        chat_u3 = await _chat(clients["uma"])
        await _line_up(api, clients, ["ursula", "ulrich"])
        placed = await _send(clients["uma"], chat_u3, "uma-1")
        assert placed.json()["reply"]["queue"]["position"] == 1, "admin is a paying tier"
        view = (await clients["ursula"].get("/api/v1/queue")).json()
        assert view["length"] == 3 and view["capacity"] == 1
        assert [t["tier"] for t in view["tiers"]] == ["plus", "user"]
        assert view["backends"] == [], "only staff see the backends"
        staff_view = (await clients["uma"].get("/api/v1/queue")).json()
        assert staff_view["backends"][0]["name"] == "a"
        ulrich_chat = (await clients["ulrich"].get("/api/v1/chats")).json()["items"][0]["id"]
        before = (await _send(clients["ulrich"], ulrich_chat, "ulrich-1")).json()["reply"]["queue"]
        blocker_chat = (await clients["blocker"].get("/api/v1/chats")).json()["items"][0]["id"]
        await wait_for_reply(clients["blocker"], blocker_chat, blocker_reply, timeout_s=60)
        after = (await _send(clients["ulrich"], ulrich_chat, "ulrich-1")).json()["reply"]["queue"]
        assert after is None or after["position"] < before["position"]


async def test_a_burst_of_sends_gets_distinct_gapless_places(
    make_settings: Callable[..., Settings],
) -> None:
    async with fleet(make_settings, ONE_VERY_SLOW_SLOT, max_reply_tokens=60) as (api, _):
        names = [f"burst{number}" for number in range(8)]
        clients = await _users(api, ["blocker", *names])
        chats = {name: await _chat(clients[name]) for name in names}
        # The one slot is taken first (for seconds): no reply of the burst is claimed
        # while the burst is stored, so each is told its place in one unmoving line.
        await _line_up(api, clients, ["blocker"])
        await asyncio.sleep(0.2)
        answers = await asyncio.gather(
            *(_send(clients[name], chats[name], f"{name}-1") for name in names)
        )
        places = [answer.json()["reply"]["queue"] for answer in answers]
        assert all(place is not None for place in places), places
        positions = sorted(place["position"] for place in places)
        assert positions == list(range(1, len(names) + 1)), positions
