"""A room's stream over a real HTTP server, three people and three characters: every
member's stream carries the same events (ids, order, data); concurrent sends get one
order; typing and presence are live; a removed member's, a leaver's and everybody's
streams on deletion end at once with `access_revoked`; a viewer and a muted member
cannot send."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from room_helpers import Room, StreamReader, make_room, over_http

from conftest import Api, assert_problem, fleet, serve_app
from personae.services.chat_events import chat_stream
from personae.settings import Settings
from personae.storage.repos import chats as chat_repo
from personae.storage.repos import rooms as rooms_repo


@pytest.fixture
async def served(make_settings: Callable[..., Settings]) -> AsyncIterator[tuple[Api, str]]:
    async with (
        fleet(make_settings, {"sim": {"slots": 4}}) as (api, _urls),
        serve_app(api.app, lifespan="off") as url,
    ):
        yield api, url


async def _quiet(api: Api, room_id: str) -> None:
    """Wait until the room has no turn planned or started and no reply open."""
    async with asyncio.timeout(60):
        while True:
            async with api.container.database.read() as tx:
                turns = await rooms_repo.open_turns(tx, room_id)
                open_replies = await chat_repo.unfinished_replies(tx, room_id)
            if not turns and not open_replies:
                return
            await asyncio.sleep(0.05)


async def _assert_one_reply_at_a_time(api: Api, room_id: str) -> None:
    """Replies never overlap, from what the database stored (not from how closely
    spaced events interleave): in place order, each reply was created (its turn
    started) no earlier than the reply before it last changed (ended)."""
    async with api.container.database.read() as tx:
        history = await chat_repo.list_history(tx, room_id)
    replies = [m for m in history if m.role == "assistant" and not m.labels.get("greeting")]
    assert replies and all(m.status in ("complete", "stopped", "failed") for m in replies)
    for before, after in itertools.pairwise(replies):
        assert after.created_at >= before.updated_at, "two replies of a room at once"


async def _readers(room: Room, url: str) -> list[StreamReader]:
    readers = [StreamReader(over_http(c, url), room.id).start() for c in room.people]
    for reader in readers:  # everybody is here once every stream is open
        await reader.wait_for(
            lambda e: e.name == "presence" and len(e.data["here"]) == len(room.people)
        )
    return readers


async def test_every_member_sees_the_same_events_in_one_order(served: tuple[Api, str]) -> None:
    api, url = served
    room = await make_room(api, people=3, turn_mode="list")
    readers = await _readers(room, url)
    try:
        here = (await room.owner.get(f"/api/v1/rooms/{room.id}")).json()["members"]
        assert all(member["here"] for member in here)
        # Two people send at once: one order for both, and everybody sees it.
        first, second = await asyncio.gather(
            room.people[1].put(f"/api/v1/chats/{room.id}/messages/x1", json={"content": "One"}),
            room.people[2].put(f"/api/v1/chats/{room.id}/messages/x2", json={"content": "Two"}),
        )
        assert first.status_code == second.status_code == 202, (first.text, second.text)
        positions = {first.json()["message"]["position"], second.json()["message"]["position"]}
        assert len(positions) == 2
        await _quiet(api, room.id)
        last = await api.container.events.last_id(chat_stream(room.id))
        for reader in readers:
            await reader.wait_for(lambda e, last=last: e.id == last)
        logs = [reader.logged() for reader in readers]
        assert logs[0] == logs[1] == logs[2]
        ids = [event_id for event_id, _, _ in logs[0]]
        assert len(ids) == len(set(ids))
        # Each message is told with the place its sender was given (compared per
        # message, not by how two sends' events interleave).
        given = {
            r.json()["message"]["id"]: r.json()["message"]["position"] for r in (first, second)
        }
        sent = [d for _, name, d in logs[0] if name == "message" and d["role"] == "user"]
        assert {m["id"]: m["position"] for m in sent} == given
        assert {m["author_name"] for m in sent} == {
            m["persona_name"] for m in here if m["role"] == "member"
        }
        await _assert_one_reply_at_a_time(api, room.id)
        assert {d["character_name"] for _, n, d in logs[0] if n == "reply_state"} <= set(room.names)
        turns = [d for _, name, d in logs[0] if name == "turn"]
        assert turns and all(t["name"] in room.names for t in turns)
        # Typing is live for the others, with no id (not replayed).
        typed = await room.people[1].post(f"/api/v1/rooms/{room.id}/typing")
        assert typed.status_code == 204, typed.text
        event = await readers[0].wait_for(lambda e: e.name == "typing")
        assert event.id is None and event.data["user_id"] == room.user_ids[1]
    finally:
        for reader in readers:
            await reader.stop()


async def test_a_removed_member_loses_the_room_at_once(served: tuple[Api, str]) -> None:
    api, url = served
    room = await make_room(api, people=3)
    readers = await _readers(room, url)
    try:
        removed = await room.owner.delete(f"/api/v1/rooms/{room.id}/members/{room.user_ids[1]}")
        assert removed.status_code == 204, removed.text
        revoked = await readers[1].wait_for(lambda e: e.name == "access_revoked")
        assert revoked.data == {"reason": "removed"}
        await asyncio.wait_for(readers[1].ended.wait(), 10)
        # The others carry on, and learn who was removed.
        seen = await readers[0].wait_for(lambda e: e.name == "member")
        assert seen.data["change"] == "removed" and seen.data["user_id"] == room.user_ids[1]
        assert not readers[0].ended.is_set()
        gone = room.people[1]
        assert_problem(await gone.get(f"/api/v1/chats/{room.id}/messages"), 404, "not_found")
        assert_problem(await gone.get(f"/api/v1/rooms/{room.id}"), 404, "not_found")
        again = StreamReader(over_http(gone, url), room.id).start()
        await asyncio.wait_for(again.ended.wait(), 10)
        assert again.status == 404
        await again.stop()
        refused = await gone.put(f"/api/v1/chats/{room.id}/messages/late", json={"content": "Hi"})
        assert_problem(refused, 404, "not_found")
        # Someone who leaves: the same, with reason "left".
        left = await room.people[2].post(f"/api/v1/rooms/{room.id}/leave")
        assert left.status_code == 204, left.text
        event = await readers[2].wait_for(lambda e: e.name == "access_revoked")
        assert event.data == {"reason": "left"}
        await asyncio.wait_for(readers[2].ended.wait(), 10)
        # The room deleted: every stream ends.
        deleted = await room.owner.delete(f"/api/v1/chats/{room.id}")
        assert deleted.status_code == 204, deleted.text
        event = await readers[0].wait_for(lambda e: e.name == "access_revoked")
        assert event.data == {"reason": "room_deleted"}
        await asyncio.wait_for(readers[0].ended.wait(), 10)
    finally:
        for reader in readers:
            await reader.stop()


async def test_viewers_and_muted_members_cannot_send(served: tuple[Api, str]) -> None:
    api, _url = served
    room = await make_room(api, people=3, roles=("viewer", "member"))
    viewer, member = room.people[1], room.people[2]
    refused = await viewer.put(f"/api/v1/chats/{room.id}/messages/v1", json={"content": "Hi"})
    assert_problem(refused, 403, "room_role_forbidden")
    assert_problem(await viewer.post(f"/api/v1/rooms/{room.id}/typing"), 403, "room_role_forbidden")
    assert_problem(
        await viewer.post(f"/api/v1/rooms/{room.id}/auto", json={"turns": 2}),
        403,
        "room_role_forbidden",
    )
    # A viewer reads along.
    assert (await viewer.get(f"/api/v1/chats/{room.id}/messages")).status_code == 200
    # A member may not do the owner's part.
    assert_problem(
        await member.patch(f"/api/v1/rooms/{room.id}", json={"title": "Mine"}),
        403,
        "room_role_forbidden",
    )
    assert_problem(await member.delete(f"/api/v1/chats/{room.id}"), 403, "room_role_forbidden")
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    muted = await room.owner.patch(
        f"/api/v1/rooms/{room.id}/members/{room.user_ids[2]}", json={"muted_until": until}
    )
    assert muted.status_code == 200, muted.text
    refused = await member.put(f"/api/v1/chats/{room.id}/messages/m1", json={"content": "Hi"})
    assert_problem(refused, 403, "member_muted")
    unmuted = await room.owner.patch(
        f"/api/v1/rooms/{room.id}/members/{room.user_ids[2]}", json={"muted_until": None}
    )
    assert unmuted.status_code == 200
    sent = await member.put(f"/api/v1/chats/{room.id}/messages/m1", json={"content": "Hi"})
    assert sent.status_code == 202, sent.text
    # Viewer promoted to member may send.
    promoted = await room.owner.patch(
        f"/api/v1/rooms/{room.id}/members/{room.user_ids[1]}", json={"role": "member"}
    )
    assert promoted.status_code == 200
    sent = await viewer.put(f"/api/v1/chats/{room.id}/messages/v1", json={"content": "Hi"})
    assert sent.status_code == 202, sent.text
    await _quiet(api, room.id)
    assert isinstance(viewer, httpx.AsyncClient)
