"""Invite links: shown once (only a hash stored), joining with a role, idempotent for a
member, expired (410 invite_expired), revoked (410 invite_revoked, at once), used up
(410 invite_used_up), a full room (409 room_full); the room's characters, limits and
errors of the owner's actions."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from room_helpers import make_characters, make_room
from sqlalchemy import select, update

from conftest import PASSWORD, Api, assert_problem
from personae.settings import Settings
from personae.storage.tables import room_invites
from personae.storage.types import utcnow


async def test_invite_links_join_expire_revoke_and_run_out(api: Api) -> None:
    room = await make_room(api, people=1)
    owner = room.owner
    created = await owner.post(
        f"/api/v1/rooms/{room.id}/invites", json={"role": "viewer", "max_uses": 1}
    )
    assert created.status_code == 201, created.text
    invite = created.json()
    assert invite["url"] == f"/join/{invite['token']}"
    async with api.container.database.read() as tx:
        stored = (await tx.execute(select(room_invites))).mappings().all()
    assert [row["token_sha256"] for row in stored] == [
        hashlib.sha256(invite["token"].encode()).hexdigest()
    ]
    listed = (await owner.get(f"/api/v1/rooms/{room.id}/invites")).json()
    assert "token" not in listed[0] and listed[0]["uses"] == 0
    first, second = await api.user(), await api.user()
    joined = await first.post(f"/api/v1/invites/{invite['token']}/accept")
    assert joined.status_code == 200, joined.text
    assert joined.json()["my_role"] == "viewer"
    # Again: the member is shown the room, the use not counted twice.
    assert (await first.post(f"/api/v1/invites/{invite['token']}/accept")).status_code == 200
    used_up = await second.post(f"/api/v1/invites/{invite['token']}/accept")
    assert_problem(used_up, 410, "invite_used_up")

    revoked = (await owner.post(f"/api/v1/rooms/{room.id}/invites", json={})).json()
    gone = await owner.delete(f"/api/v1/rooms/{room.id}/invites/{revoked['id']}")
    assert gone.status_code == 204
    assert_problem(
        await second.post(f"/api/v1/invites/{revoked['token']}/accept"), 410, "invite_revoked"
    )

    expiring = (await owner.post(f"/api/v1/rooms/{room.id}/invites", json={})).json()
    async with api.container.database.write() as tx:
        await tx.execute(
            update(room_invites)
            .where(room_invites.c.id == expiring["id"])
            .values(expires_at=utcnow())
        )
    assert_problem(
        await second.post(f"/api/v1/invites/{expiring['token']}/accept"), 410, "invite_expired"
    )
    assert_problem(await second.post("/api/v1/invites/not-a-token-at-all/accept"), 404, "not_found")
    assert_problem(
        await owner.post(f"/api/v1/rooms/{room.id}/invites", json={"expires_in_s": 5}),
        422,
        "validation_error",
    )
    # Only the owner makes and sees links.
    assert_problem(
        await first.post(f"/api/v1/rooms/{room.id}/invites", json={}), 403, "room_role_forbidden"
    )


async def test_a_full_room_takes_nobody_more(make_settings: Callable[..., Settings]) -> None:
    from personae.app import create_app

    app = create_app(make_settings(room_max_members=2, room_max_characters=2))
    async with app.router.lifespan_context(app):
        api = Api(app)
        owner = await api.user()
        ids = await make_characters(owner, ["Ada", "Brom", "Cleo"])
        too_many = await owner.post("/api/v1/rooms", json={"character_ids": ids})
        assert_problem(too_many, 409, "room_full")
        room = (await owner.post("/api/v1/rooms", json={"character_ids": ids[:2]})).json()
        assert_problem(
            await owner.post(
                f"/api/v1/rooms/{room['id']}/characters", json={"character_id": ids[2]}
            ),
            409,
            "room_full",
        )
        token = (await owner.post(f"/api/v1/rooms/{room['id']}/invites", json={})).json()["token"]
        assert (await (await api.user()).post(f"/api/v1/invites/{token}/accept")).status_code == 200
        late = await (await api.user()).post(f"/api/v1/invites/{token}/accept")
        assert_problem(late, 409, "room_full")
        await api.aclose()


async def test_characters_of_a_room(api: Api) -> None:
    room = await make_room(api, people=2)
    owner = room.owner
    base = f"/api/v1/rooms/{room.id}/characters"
    assert_problem(await owner.delete(f"{base}/nope"), 422, "character_not_in_room")
    for character_id in room.character_ids[1:]:
        left = await owner.delete(f"{base}/{character_id}")
        assert left.status_code == 200, left.text
    only = await owner.delete(f"{base}/{room.character_ids[0]}")
    assert_problem(only, 409, "room_needs_a_character")
    # Private characters of others: name and picture only.
    other = room.people[1]
    private = await other.post(
        "/api/v1/characters",
        json={"name": "Hidden", "description": "SECRET", "visibility": "private"},
    )
    refused = await owner.post(base, json={"character_id": private.json()["id"]})
    assert_problem(refused, 404, "not_found")
    assert_problem(
        await owner.post("/api/v1/rooms", json={"character_ids": []}), 422, "validation_error"
    )
    chat = await owner.get(f"/api/v1/chats/{room.id}")
    assert chat.json()["kind"] == "room"
    direct = await owner.post("/api/v1/chats", json={"character_id": room.character_ids[0]})
    assert_problem(await owner.get(f"/api/v1/rooms/{direct.json()['id']}"), 409, "not_a_room")
    listed = (await other.get("/api/v1/chats")).json()["items"]
    assert [c["id"] for c in listed] == [room.id]


async def test_a_private_character_shows_only_its_name_and_picture(api: Api) -> None:
    room = await make_room(api, people=2)
    owner, member = room.owner, room.people[1]
    picture = (
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4"
        "z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
    )
    private = await owner.post(
        "/api/v1/characters",
        json={
            "name": "Hidden",
            "tagline": "SECRET tagline",
            "description": "SECRET",
            "visibility": "private",
            "avatar": picture,
        },
    )
    added = await owner.post(
        f"/api/v1/rooms/{room.id}/characters", json={"character_id": private.json()["id"]}
    )
    assert added.status_code == 200, added.text
    seen = (await member.get(f"/api/v1/rooms/{room.id}")).json()
    hidden = next(c for c in seen["characters"] if c["name"] == "Hidden")
    assert hidden["description_short"] == ""
    assert "SECRET" not in str(seen)
    assert (await member.get(hidden["avatar"])).status_code == 200
    assert_problem(await member.get(f"/api/v1/characters/{private.json()['id']}"), 404, "not_found")


async def test_deleting_an_account_in_rooms(api: Api) -> None:
    room = await make_room(api, people=2)
    member = room.people[1]
    # The member's own character is in the owner's room; the member goes: they leave
    # the room, their character stays in it (deleted only for its creator).
    mine = await member.post("/api/v1/characters", json={"name": "Mine"})
    added = await room.owner.post(
        f"/api/v1/rooms/{room.id}/characters", json={"character_id": mine.json()["id"]}
    )
    assert added.status_code == 200, added.text
    gone = await member.request("DELETE", "/api/v1/me", json={"password": PASSWORD})
    assert gone.status_code == 200, gone.text
    after = (await room.owner.get(f"/api/v1/rooms/{room.id}")).json()
    assert [m["user_id"] for m in after["members"]] == [room.user_ids[0]]
    assert "Mine" in [c["name"] for c in after["characters"]]
    # The owner deletes theirs: their rooms go with them.
    deleted = await room.owner.request("DELETE", "/api/v1/me", json={"password": PASSWORD})
    assert deleted.status_code == 200, deleted.text
