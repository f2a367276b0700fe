"""Turn order in a room: list, random, natural (mentions first, then talkativeness),
manual (respond_with, or 422 respond_with_required), a pick (POST /turns), and
auto-mode stopping at N and on request. Replies never overlap."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable

import pytest
from room_helpers import make_room, messages, wait_quiet

from conftest import Api, assert_problem, fleet
from personae.settings import Settings
from personae.storage.repos import chats as chat_repo
from personae.storage.repos import rooms as rooms_repo


@pytest.fixture
async def room_api(make_settings: Callable[..., Settings]) -> AsyncIterator[Api]:
    async with fleet(make_settings, {"sim": {"slots": 4}}) as (api, _urls):
        yield api


def _speakers(items: list[dict[str, object]]) -> list[object]:
    return [
        m["character_name"]
        for m in items
        if m["role"] == "assistant" and not m["labels"].get("greeting")  # type: ignore[attr-defined]
    ]


def _no_overlap(items: list[dict[str, object]]) -> None:
    """Each reply started after the one before it ended (one reply at a time)."""
    replies = [m for m in items if m["role"] == "assistant" and m["status"] != "queued"]
    positions = [m["position"] for m in replies]
    assert positions == sorted(positions)


async def test_list_order_answers_with_every_character_in_order(room_api: Api) -> None:
    room = await make_room(room_api, people=2)
    sent = await room.people[1].put(
        f"/api/v1/chats/{room.id}/messages/a1", json={"content": "Hello all"}
    )
    assert sent.status_code == 202, sent.text
    body = sent.json()
    assert [t["name"] for t in body["turns"]] == room.names
    assert body["reply"]["character_id"] == room.character_ids[0]
    assert body["message"]["author_name"]
    items = await wait_quiet(room.owner, room.id, 3)
    assert _speakers(items) == room.names
    _no_overlap(items)


async def test_natural_order_mentions_first_then_talkative_ones(room_api: Api) -> None:
    room = await make_room(room_api, people=1, turn_mode="natural", talkativeness=0.0)
    sent = await room.owner.put(
        f"/api/v1/chats/{room.id}/messages/n1", json={"content": "cleo and then ada, please"}
    )
    assert [t["name"] for t in sent.json()["turns"]] == ["Cleo", "Ada"]
    assert [t["reason"] for t in sent.json()["turns"]] == ["mention", "mention"]
    items = await wait_quiet(room.owner, room.id, 2)
    assert _speakers(items) == ["Cleo", "Ada"]
    # Nobody named and nobody talkative: still one answers.
    sent = await room.owner.put(f"/api/v1/chats/{room.id}/messages/n2", json={"content": "Hm."})
    assert len(sent.json()["turns"]) == 1
    await wait_quiet(room.owner, room.id, 3)


async def test_random_order_answers_with_one(room_api: Api) -> None:
    room = await make_room(room_api, people=1, turn_mode="random")
    sent = await room.owner.put(f"/api/v1/chats/{room.id}/messages/r1", json={"content": "Hi"})
    turns = sent.json()["turns"]
    assert len(turns) == 1 and turns[0]["reason"] == "random"
    assert turns[0]["name"] in room.names
    await wait_quiet(room.owner, room.id, 1)


async def test_manual_order_needs_respond_with(room_api: Api) -> None:
    room = await make_room(room_api, people=1, turn_mode="manual")
    refused = await room.owner.put(f"/api/v1/chats/{room.id}/messages/m1", json={"content": "Hi"})
    assert_problem(refused, 422, "respond_with_required")
    stranger = await room.owner.put(
        f"/api/v1/chats/{room.id}/messages/m1",
        json={"content": "Hi", "respond_with": "not-a-character"},
    )
    assert_problem(stranger, 422, "character_not_in_room")
    quiet = await room.owner.put(
        f"/api/v1/chats/{room.id}/messages/m2", json={"content": "Just saying", "respond": False}
    )
    assert quiet.status_code == 202 and quiet.json()["reply"] is None
    picked = await room.owner.put(
        f"/api/v1/chats/{room.id}/messages/m3",
        json={"content": "Brom?", "respond_with": room.character_ids[1]},
    )
    assert picked.json()["reply"]["character_name"] == "Brom"
    items = await wait_quiet(room.owner, room.id, 1)
    assert _speakers(items) == ["Brom"]
    # A person picks who speaks now.
    turn = await room.owner.post(
        f"/api/v1/rooms/{room.id}/turns", json={"character_id": room.character_ids[2]}
    )
    assert turn.status_code == 202, turn.text
    items = await wait_quiet(room.owner, room.id, 2)
    assert _speakers(items) == ["Brom", "Cleo"]


async def test_auto_mode_stops_at_n(room_api: Api) -> None:
    room = await make_room(room_api, people=1, turn_mode="manual")
    started = await room.owner.post(f"/api/v1/rooms/{room.id}/auto", json={"turns": 4})
    assert started.status_code == 202, started.text
    items = await wait_quiet(room.owner, room.id, 4)
    speakers = _speakers(items)
    assert len(speakers) == 4
    # Nobody speaks twice in a row.
    assert all(a != b for a, b in itertools.pairwise(speakers))
    room_now = (await room.owner.get(f"/api/v1/rooms/{room.id}")).json()
    assert room_now["auto_turns_left"] == 0
    assert len(_speakers(await messages(room.owner, room.id))) == 4
    too_many = await room.owner.post(f"/api/v1/rooms/{room.id}/auto", json={"turns": 11})
    assert_problem(too_many, 422, "validation_error")


async def test_auto_mode_stops_on_request(room_api: Api) -> None:
    room = await make_room(room_api, people=2, turn_mode="manual")
    await room.owner.post(f"/api/v1/rooms/{room.id}/auto", json={"turns": 10})
    stopped = await room.people[1].delete(f"/api/v1/rooms/{room.id}/auto")
    assert stopped.status_code == 200, stopped.text
    assert stopped.json() == {"turns_left": 0, "running": False}
    async with room_api.container.database.read() as tx:
        begun = [
            t
            for t in await rooms_repo.last_turns(tx, room.id, 100)
            if t.status in (rooms_repo.STARTED, rooms_repo.DONE)
        ]
    items = await wait_quiet(room.owner, room.id, len(begun))
    # Only the replies begun before it was stopped were written.
    assert 1 <= len(_speakers(items)) == len(begun) < 10
    assert (await room.owner.get(f"/api/v1/rooms/{room.id}")).json()["auto_turns_left"] == 0


async def test_the_next_speaker_reuses_the_prompt_cache(room_api: Api) -> None:
    """The second character's prompt starts as the first one's did, up to the end of
    the history the first one read: the (simulated) backend finds it in its cache."""
    room = await make_room(room_api, people=1)
    await room.owner.put(f"/api/v1/chats/{room.id}/messages/c1", json={"content": "Hello!"})
    items = await wait_quiet(room.owner, room.id, 3)
    replies = [m for m in items if m["role"] == "assistant" and not m["labels"].get("greeting")]
    async with room_api.container.database.read() as tx:
        stored = [await chat_repo.get_message(tx, m["id"]) for m in replies]
    generations = [m.generation or {} for m in stored if m is not None]
    cached = [g.get("cached_tokens") or 0 for g in generations]
    # The first speaker's prompt is new; the next ones find the room's part and the
    # history in the cache, each one more (the reply before it too).
    assert 0 == cached[0] < cached[1] < cached[2], generations
    assert all((g.get("cached_share") or 0) > 0.3 for g in generations[1:]), generations


async def test_a_message_stops_auto_mode_and_personas_are_per_member(room_api: Api) -> None:
    room = await make_room(room_api, people=2, turn_mode="list")
    member = room.people[1]
    renamed = await member.patch(
        f"/api/v1/rooms/{room.id}/members/me", json={"persona_name": "Captain Vale"}
    )
    assert renamed.status_code == 200, renamed.text
    started = await room.owner.post(f"/api/v1/rooms/{room.id}/auto", json={"turns": 10})
    assert started.status_code == 202
    sent = await member.put(
        f"/api/v1/chats/{room.id}/messages/s1", json={"content": "Enough, Brom.", "respond": False}
    )
    assert sent.status_code == 202, sent.text
    assert sent.json()["message"]["author_name"] == "Captain Vale"
    assert sent.json()["turns"] == []
    assert (await room.owner.get(f"/api/v1/rooms/{room.id}")).json()["auto_turns_left"] == 0
    items = await wait_quiet(room.owner, room.id, 1)
    # Only auto replies started before the message; none after it.
    position = sent.json()["message"]["position"]
    assert all(m["position"] < position for m in items if m["role"] == "assistant"), items
    owner_view = (await room.owner.get(f"/api/v1/rooms/{room.id}")).json()
    personas = {m["user_id"]: m["persona_name"] for m in owner_view["members"]}
    assert personas[room.user_ids[1]] == "Captain Vale"
    assert personas[room.user_ids[0]] != "Captain Vale"
    back = await member.patch(f"/api/v1/rooms/{room.id}/members/me", json={"persona_id": None})
    me = (await member.get("/api/v1/me")).json()
    mine = next(m for m in back.json()["members"] if m["user_id"] == me["id"])
    assert mine["persona_name"] == me["display_name"]
    changed = await room.owner.patch(f"/api/v1/rooms/{room.id}", json={"turn_mode": "random"})
    assert changed.json()["turn_mode"] == "random"
    bad = await room.owner.patch(f"/api/v1/rooms/{room.id}", json={"turn_mode": "chaos"})
    assert_problem(bad, 422, "validation_error")
