"""A room is gated by its highest-rated character: once its owner adds a mature one,
a member not confirmed as an adult may no longer write in it (send, swipe, pick who
speaks), as in a one-on-one chat with a mature character; an adult goes on."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import date

import pytest
from room_helpers import join, make_characters, messages, wait_quiet

from conftest import Api, assert_problem, fleet
from personae.settings import Settings

GATE = "adult_confirmation_required"


@pytest.fixture
async def rated_api(make_settings: Callable[..., Settings]) -> AsyncIterator[Api]:
    async with fleet(make_settings, {"sim": {"slots": 2}}) as (api, _urls):
        yield api


async def test_adding_a_mature_character_gates_the_room_for_members_not_adult(
    rated_api: Api,
) -> None:
    api = rated_api
    owner, member = await api.user(), await api.user()
    thirty = date.today().replace(year=date.today().year - 30, day=1).isoformat()
    declared = await owner.post("/api/v1/me/age", json={"birth_date": thirty})
    assert declared.status_code == 200, declared.text
    (ada,) = await make_characters(owner, ["Ada"])
    created = await owner.post(
        "/api/v1/rooms", json={"title": "Room", "character_ids": [ada], "turn_mode": "list"}
    )
    assert created.status_code == 201, created.text
    room_id = created.json()["id"]
    await join(owner, room_id, member, "member")
    sent = await member.put(f"/api/v1/chats/{room_id}/messages/m1", json={"content": "Hi"})
    assert sent.status_code == 202, sent.text
    await wait_quiet(owner, room_id, 1)

    nyx = await owner.post(
        "/api/v1/characters", json={"name": "Nyx", "first_message": "Hm.", "rating": "mature"}
    )
    assert nyx.status_code == 201, nyx.text
    added = await owner.post(
        f"/api/v1/rooms/{room_id}/characters", json={"character_id": nyx.json()["id"]}
    )
    assert added.status_code == 200, added.text
    before = await messages(owner, room_id)

    refused = await member.put(f"/api/v1/chats/{room_id}/messages/m2", json={"content": "Hey"})
    body = assert_problem(refused, 403, GATE)
    assert body["rating"] == "mature"
    reply = sent.json()["reply"]["id"]
    assert_problem(await member.post(f"/api/v1/messages/{reply}/swipes"), 403, GATE)
    assert_problem(
        await member.post(f"/api/v1/rooms/{room_id}/turns", json={"character_id": ada}),
        403,
        GATE,
    )
    assert await messages(owner, room_id) == before  # nothing stored
    # The owner, a confirmed adult, goes on.
    again = await owner.put(f"/api/v1/chats/{room_id}/messages/o1", json={"content": "Nyx?"})
    assert again.status_code == 202, again.text
    await wait_quiet(owner, room_id, 3)


async def test_a_link_to_a_room_with_a_mature_character_asks_for_an_adult(
    rated_api: Api,
) -> None:
    api = rated_api
    owner, newcomer = await api.user(), await api.user()
    thirty = date.today().replace(year=date.today().year - 30, day=1).isoformat()
    assert (await owner.post("/api/v1/me/age", json={"birth_date": thirty})).status_code == 200
    nyx = await owner.post(
        "/api/v1/characters", json={"name": "Nyx", "first_message": "Hm.", "rating": "mature"}
    )
    assert nyx.status_code == 201, nyx.text
    created = await owner.post(
        "/api/v1/rooms", json={"title": "Late", "character_ids": [nyx.json()["id"]]}
    )
    assert created.status_code == 201, created.text
    room_id = created.json()["id"]
    link = await owner.post(f"/api/v1/rooms/{room_id}/invites", json={"role": "member"})
    assert link.status_code == 201, link.text
    token = link.json()["token"]
    assert_problem(await newcomer.post(f"/api/v1/invites/{token}/accept"), 403, GATE)
    assert (await newcomer.get(f"/api/v1/rooms/{room_id}")).status_code == 404
    # Once confirmed as an adult, the same link lets them in.
    assert (await newcomer.post("/api/v1/me/age", json={"birth_date": thirty})).status_code == 200
    joined = await newcomer.post(f"/api/v1/invites/{token}/accept")
    assert joined.status_code == 200, joined.text
