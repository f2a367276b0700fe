"""Rights in a room after review: changing the memory takes send rights (viewers and
muted members read it only); the `room` event shows no private character's
description; a removed member cannot come back by an older link (403 removed_from_room),
leaving and joining again keeps a mute and never raises a role; a rating counts for
the character that wrote the reply."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from room_helpers import Room, make_room, wait_quiet

from conftest import Api, assert_problem, fleet
from personae.services.chat_events import chat_stream
from personae.settings import Settings


@pytest.fixture
async def room_api(make_settings: Callable[..., Settings]) -> AsyncIterator[Api]:
    async with fleet(make_settings, {"sim": {"slots": 4}}) as (api, _urls):
        yield api


async def _link(room: Room, role: str) -> str:
    invite = await room.owner.post(f"/api/v1/rooms/{room.id}/invites", json={"role": role})
    assert invite.status_code == 201, invite.text
    token: str = invite.json()["token"]
    return token


async def _my_role(client: httpx.AsyncClient, room_id: str) -> str:
    shown = await client.get(f"/api/v1/rooms/{room_id}")
    assert shown.status_code == 200, shown.text
    role: str = shown.json()["my_role"]
    return role


async def test_viewers_and_muted_members_only_read_the_memory(api: Api) -> None:
    room = await make_room(api, people=3, roles=("viewer", "member"))
    owner, viewer, member = room.people
    pinned = await owner.post(f"/api/v1/chats/{room.id}/memories", json={"content": "Ada is 30"})
    assert pinned.status_code == 201, pinned.text
    memory_id = pinned.json()["id"]
    said = await owner.put(
        f"/api/v1/chats/{room.id}/messages/m1", json={"content": "Hello", "respond": False}
    )
    assert said.status_code == 202, said.text
    message_id = said.json()["message"]["id"]
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    muted = await owner.patch(
        f"/api/v1/rooms/{room.id}/members/{room.user_ids[2]}", json={"muted_until": until}
    )
    assert muted.status_code == 200, muted.text
    for client, code in ((viewer, "room_role_forbidden"), (member, "member_muted")):
        listed = await client.get(f"/api/v1/chats/{room.id}/memories")
        assert listed.status_code == 200, listed.text
        assert [m["id"] for m in listed.json()["items"]] == [memory_id]
        refused = [
            await client.post(f"/api/v1/chats/{room.id}/memories", json={"content": "Lies"}),
            await client.post(f"/api/v1/messages/{message_id}/pin"),
            await client.patch(f"/api/v1/memories/{memory_id}", json={"content": "Lies"}),
            await client.delete(f"/api/v1/memories/{memory_id}"),
        ]
        for response in refused:
            assert_problem(response, 403, code)
    listed = await owner.get(f"/api/v1/chats/{room.id}/memories")
    assert [(m["id"], m["content"]) for m in listed.json()["items"]] == [(memory_id, "Ada is 30")]
    # The owner and a member not muted still change it.
    unmuted = await owner.patch(
        f"/api/v1/rooms/{room.id}/members/{room.user_ids[2]}", json={"muted_until": None}
    )
    assert unmuted.status_code == 200, unmuted.text
    edited = await member.patch(f"/api/v1/memories/{memory_id}", json={"content": "Ada is 31"})
    assert edited.status_code == 200, edited.text
    assert (await member.post(f"/api/v1/messages/{message_id}/pin")).status_code == 201


async def test_the_room_event_hides_private_descriptions(api: Api) -> None:
    room = await make_room(api, people=2)
    private = await room.owner.post(
        "/api/v1/characters",
        json={
            "name": "Hidden",
            "tagline": "SECRET tagline",
            "description": "SECRET",
            "visibility": "private",
        },
    )
    assert private.status_code == 201, private.text
    added = await room.owner.post(
        f"/api/v1/rooms/{room.id}/characters", json={"character_id": private.json()["id"]}
    )
    assert added.status_code == 200, added.text
    renamed = await room.owner.patch(f"/api/v1/rooms/{room.id}", json={"title": "Renamed"})
    assert renamed.status_code == 200, renamed.text
    events = await api.container.events.read(chat_stream(room.id), None, wait_s=0)
    shown = [e.data for e in events if e.name == "room"]
    assert shown and shown[-1]["title"] == "Renamed"
    by_name = {c["name"]: c for c in shown[-1]["characters"]}
    assert by_name["Hidden"]["description_short"] == ""
    assert "SECRET" not in str(shown)
    # A character anybody may read keeps its description in the event.
    assert by_name["Ada"]["description_short"] == "Ada"


async def test_a_removed_member_comes_back_only_by_a_link_made_after(api: Api) -> None:
    room = await make_room(api, people=2)
    removed = room.people[1]
    old_link = await _link(room, "member")
    gone = await room.owner.delete(f"/api/v1/rooms/{room.id}/members/{room.user_ids[1]}")
    assert gone.status_code == 204, gone.text
    assert_problem(
        await removed.post(f"/api/v1/invites/{old_link}/accept"), 403, "removed_from_room"
    )
    assert (await removed.get(f"/api/v1/rooms/{room.id}")).status_code == 404
    # The owner lets them back in with a new link.
    new_link = await _link(room, "viewer")
    back = await removed.post(f"/api/v1/invites/{new_link}/accept")
    assert back.status_code == 200, back.text
    assert back.json()["my_role"] == "viewer"
    invites = (await room.owner.get(f"/api/v1/rooms/{room.id}/invites")).json()
    assert sum(i["uses"] for i in invites) == 2  # the first join and the new link's


async def test_leaving_and_joining_again_keeps_the_mute_and_the_lower_role(api: Api) -> None:
    room = await make_room(api, people=3, roles=("member", "viewer"))
    member, viewer = room.people[1], room.people[2]
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    muted = await room.owner.patch(
        f"/api/v1/rooms/{room.id}/members/{room.user_ids[1]}", json={"muted_until": until}
    )
    assert muted.status_code == 200, muted.text
    member_link = await _link(room, "member")
    for client in (member, viewer):
        assert (await client.post(f"/api/v1/rooms/{room.id}/leave")).status_code == 204
        back = await client.post(f"/api/v1/invites/{member_link}/accept")
        assert back.status_code == 200, back.text
    # The mute still runs, and the viewer did not become a member.
    refused = await member.put(f"/api/v1/chats/{room.id}/messages/u1", json={"content": "Hi"})
    assert_problem(refused, 403, "member_muted")
    assert await _my_role(viewer, room.id) == "viewer"
    refused = await viewer.put(f"/api/v1/chats/{room.id}/messages/v1", json={"content": "Hi"})
    assert_problem(refused, 403, "room_role_forbidden")
    # A member following a viewer's link comes back as a viewer (the link's role).
    viewer_link = await _link(room, "viewer")
    assert (await member.post(f"/api/v1/rooms/{room.id}/leave")).status_code == 204
    assert (await member.post(f"/api/v1/invites/{viewer_link}/accept")).status_code == 200
    assert await _my_role(member, room.id) == "viewer"


async def test_a_rating_counts_for_the_character_that_wrote_the_reply(room_api: Api) -> None:
    room = await make_room(room_api, people=1, turn_mode="list")
    sent = await room.owner.put(
        f"/api/v1/chats/{room.id}/messages/r1",
        json={"content": "Hello", "respond_with": room.character_ids[1]},
    )
    assert sent.status_code == 202, sent.text
    items = await wait_quiet(room.owner, room.id, 1)
    reply = next(m for m in items if m["role"] == "assistant" and not m["labels"].get("greeting"))
    assert reply["character_id"] == room.character_ids[1]
    rated = await room.owner.put(f"/api/v1/messages/{reply['id']}/rating", json={"stars": 4})
    assert rated.status_code == 200, rated.text
    counts = {}
    for character_id in room.character_ids[:2]:
        shown = await room.owner.get(f"/api/v1/characters/{character_id}")
        counts[character_id] = shown.json()["rating_count"]
    assert counts == {room.character_ids[0]: 0, room.character_ids[1]: 1}
