"""DELETE /api/v1/me: after a confirmation, everything the account owned is deleted or
anonymised as docs/settings.md says, in one transaction (a failure leaves it all)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from conftest import PASSWORD, Api, assert_problem
from personae.storage.repos import account_deletion as deletion_repo
from personae.storage.repos import accounts as accounts_repo
from personae.storage.tables import (
    api_tokens,
    characters,
    chats,
    images,
    messages,
    personas,
    reports,
    sessions,
    users,
)
from picture_samples import data_url, picture


async def _character(client: httpx.AsyncClient, name: str, **fields: Any) -> dict[str, Any]:
    body = {"name": name, "first_message": f"Hello from {name}.", "creator": "Alice A.", **fields}
    response = await client.post("/api/v1/characters", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _chat(client: httpx.AsyncClient, character_id: str) -> dict[str, Any]:
    response = await client.post("/api/v1/chats", json={"character_id": character_id})
    assert response.status_code == 201, response.text
    chat = dict(response.json())
    sent = await client.put(f"/api/v1/chats/{chat['id']}/messages/m1", json={"content": "Hi"})
    assert sent.status_code == 202, sent.text
    return chat


async def _count(api: Api, table: Any, *where: Any) -> int:
    async with api.container.database.read() as tx:
        query = select(func.count()).select_from(table).where(*where)
        return int((await tx.execute(query)).scalar_one())


async def _alice_and_her_world(api: Api) -> dict[str, Any]:
    """Alice with a private, a lonely public and a public character Bob chats with, her
    chats (with Bob's character too), a persona, a token, a second session, a report."""
    alice = await api.user("alice", display_name="Alice A.")
    bob = await api.user("bob")
    shared = await _character(alice, "Shared", visibility="public", definition_visible=True)
    private = await _character(alice, "Diary", visibility="private")
    lonely = await _character(alice, "Lonely", visibility="public")
    bobs = await _character(bob, "Bob's fox", visibility="public")
    bob_chat = await _chat(bob, shared["id"])
    alice_chats = [await _chat(alice, shared["id"]), await _chat(alice, bobs["id"])]
    await _chat(alice, private["id"])
    await alice.post("/api/v1/personas", json={"name": "Wanderer"})
    token = (await alice.post("/api/v1/tokens", json={"name": "script"})).json()["token"]
    laptop = api.client()
    await laptop.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})
    report = await alice.post(
        "/api/v1/reports",
        json={"target": "character", "target_id": bobs["id"], "reason": "spam", "note": "ads"},
    )
    assert report.status_code == 201, report.text
    me = (await alice.get("/api/v1/me")).json()
    return {
        "alice": alice,
        "bob": bob,
        "laptop": laptop,
        "token": token,
        "user_id": me["id"],
        "shared": shared,
        "private": private,
        "lonely": lonely,
        "bobs": bobs,
        "bob_chat": bob_chat,
        "alice_chats": alice_chats,
        "report_id": report.json()["id"],
    }


async def _owned_rows(api: Api, user_id: str) -> dict[str, int]:
    mine = select(chats.c.id).where(chats.c.owner_id == user_id).scalar_subquery()
    return {
        "chats": await _count(api, chats, chats.c.owner_id == user_id),
        "messages": await _count(api, messages, messages.c.chat_id.in_(mine)),
        "personas": await _count(api, personas, personas.c.user_id == user_id),
        "sessions": await _count(api, sessions, sessions.c.user_id == user_id),
        "tokens": await _count(api, api_tokens, api_tokens.c.user_id == user_id),
        "characters": await _count(
            api, characters, characters.c.owner_id == user_id, characters.c.deleted_at.is_(None)
        ),
        "reports": await _count(api, reports, reports.c.reporter_id == user_id),
    }


async def test_deleting_the_account_deletes_or_anonymises_what_it_owned(api: Api) -> None:
    world = await _alice_and_her_world(api)
    alice, bob, user_id = world["alice"], world["bob"], world["user_id"]
    bobs_before = (await bob.get(f"/api/v1/characters/{world['bobs']['id']}")).json()

    deleted = await alice.request("DELETE", "/api/v1/me", json={"password": PASSWORD})
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {
        "deleted": True,
        "chats_deleted": 3,
        "characters_deleted": 2,
        "characters_anonymised": 1,
    }
    assert any(h.startswith("personae_session=") for h in deleted.headers.get_list("set-cookie"))

    # Nothing of it works any more: sessions, the token, the password.
    for client in (alice, world["laptop"], api.bearer(world["token"])):
        assert_problem(await client.get("/api/v1/me"), 401, "not_authenticated")
    login = await api.client().post(
        "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}
    )
    assert_problem(login, 401, "invalid_credentials")

    rows = await _owned_rows(api, user_id)
    assert rows == {
        "chats": 0,
        "messages": 0,
        "personas": 0,
        "sessions": 0,
        "tokens": 0,
        "characters": 1,  # the public one Bob chats with, anonymised
        "reports": 1,  # kept for the moderators, under the anonymous account
    }
    async with api.container.database.read() as tx:
        tombstone = (await tx.execute(select(users).where(users.c.id == user_id))).mappings().one()
    assert tombstone["username"].startswith("deleted-")
    assert tombstone["display_name"] == "Deleted account"
    assert tombstone["password_hash"] is None and tombstone["deleted_at"] is not None

    # Bob's chat with her public character goes on; it names no creator any more.
    shared = (await bob.get(f"/api/v1/characters/{world['shared']['id']}")).json()
    assert shared["owner_username"] == tombstone["username"]
    assert shared["creator"] == ""
    card = (await bob.get(f"/api/v1/characters/{world['shared']['id']}/card.json")).json()
    assert card["data"]["creator"] == ""
    history = await bob.get(f"/api/v1/chats/{world['bob_chat']['id']}/messages")
    assert history.status_code == 200 and history.json()["items"]
    for gone in ("private", "lonely"):
        response = await bob.get(f"/api/v1/characters/{world[gone]['id']}")
        assert_problem(response, 404, "not_found")
    assert await _count(api, characters, characters.c.id == world["lonely"]["id"]) == 0
    # Her chat with Bob's character no longer counts.
    bobs_after = (await bob.get(f"/api/v1/characters/{world['bobs']['id']}")).json()
    assert bobs_after["chat_count"] == bobs_before["chat_count"] - 1

    # The username is free again, for a new account that inherits nothing.
    again = await api.user("alice")
    assert (await again.get("/api/v1/chats")).json()["items"] == []


async def test_the_moderators_still_see_her_report_without_her_name(api: Api) -> None:
    world = await _alice_and_her_world(api)
    moderator = await api.user("mod")
    await api.container.accounts.set_role("mod", "moderator")
    deleted = await world["alice"].request("DELETE", "/api/v1/me", json={"password": PASSWORD})
    assert deleted.status_code == 200, deleted.text
    queue = (await moderator.get("/api/v1/moderation/queue")).json()["items"]
    [report] = [item for item in queue if item["id"] == world["report_id"]]
    assert report["by_username"].startswith("deleted-")
    assert report["note"] == "ads" and report["status"] == "open"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"password": "not my password"}, 422, "wrong_password"),
        ({}, 422, "password_required"),
        ({"password": ""}, 422, "password_required"),
        ({"confirm": "alice"}, 422, "password_required"),
        ({"password": 5}, 422, "validation_error"),
        ({"password": PASSWORD, "everything": True}, 422, "validation_error"),
        ({"password": PASSWORD, "confirm": "x" * 65}, 422, "validation_error"),
    ],
)
async def test_without_the_right_confirmation_nothing_is_deleted(
    api: Api, body: dict[str, Any], status: int, code: str
) -> None:
    world = await _alice_and_her_world(api)
    before = await _owned_rows(api, world["user_id"])
    response = await world["alice"].request("DELETE", "/api/v1/me", json=body)
    assert_problem(response, status, code)
    assert await _owned_rows(api, world["user_id"]) == before
    assert (await world["alice"].get("/api/v1/me")).status_code == 200


async def test_a_body_is_required_and_csrf_too(api: Api) -> None:
    alice = await api.user("alice")
    assert_problem(await alice.delete("/api/v1/me"), 422, "validation_error")
    del alice.headers["X-CSRF-Token"]
    response = await alice.request("DELETE", "/api/v1/me", json={"password": PASSWORD})
    assert_problem(response, 403, "csrf_failed")
    anonymous = await api.client().request("DELETE", "/api/v1/me", json={"password": PASSWORD})
    assert_problem(anonymous, 401, "not_authenticated")


async def test_an_account_without_password_confirms_by_typing_its_username(api: Api) -> None:
    async with api.container.database.write() as tx:
        user = await accounts_repo.insert_user(
            tx, username="carol", display_name="Carol", password_hash=None
        )
    token = (await api.container.accounts.create_token(user, "cli")).token
    carol = api.bearer(token)
    for confirm in (None, "", "carl", "carol2"):
        body = {} if confirm is None else {"confirm": confirm}
        response = await carol.request("DELETE", "/api/v1/me", json=body)
        problem = assert_problem(response, 422, "confirmation_mismatch")
        assert "carol" in problem["detail"]
    deleted = await carol.request("DELETE", "/api/v1/me", json={"confirm": " Carol "})
    assert deleted.status_code == 200, deleted.text
    assert_problem(await carol.get("/api/v1/me"), 401, "not_authenticated")


async def test_the_last_admin_cannot_delete_their_account(api: Api) -> None:
    root = await api.user("root")
    await api.container.accounts.set_role("root", "admin")
    refused = await root.request("DELETE", "/api/v1/me", json={"password": PASSWORD})
    assert_problem(refused, 409, "last_admin")
    assert (await root.get("/api/v1/me")).status_code == 200
    await api.user("second")
    await api.container.accounts.set_role("second", "admin")
    deleted = await root.request("DELETE", "/api/v1/me", json={"password": PASSWORD})
    assert deleted.status_code == 200, deleted.text


async def test_a_failure_midway_leaves_everything_as_it_was(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = await _alice_and_her_world(api)
    before = await _owned_rows(api, world["user_id"])
    total_messages = await _count(api, messages)

    async def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("the disk is full")

    # The last step fails: chats, characters, sessions... were deleted before it.
    monkeypatch.setattr(deletion_repo, "scrub_user", broken)
    response = await world["alice"].request("DELETE", "/api/v1/me", json={"password": PASSWORD})
    assert_problem(response, 500, "internal_error")
    assert await _owned_rows(api, world["user_id"]) == before
    assert await _count(api, messages) == total_messages
    assert (await world["alice"].get("/api/v1/me")).status_code == 200
    assert (await world["laptop"].get("/api/v1/me")).status_code == 200
    assert (await api.bearer(world["token"]).get("/api/v1/me")).status_code == 200
    private = await world["alice"].get(f"/api/v1/characters/{world['private']['id']}")
    assert private.status_code == 200
    assert private.json()["creator"] == "Alice A."

    monkeypatch.undo()
    deleted = await world["alice"].request("DELETE", "/api/v1/me", json={"password": PASSWORD})
    assert deleted.status_code == 200, deleted.text


async def test_an_imported_card_that_stays_forgets_its_creator(api: Api) -> None:
    alice = await api.user("alice")
    bob = await api.user("bob")
    card = (
        b'{"spec": "chara_card_v3", "spec_version": "3.0", "data": {"name": "Imported", '
        b'"description": "a card", "first_mes": "Hi", "creator": "Alice Realname"}}'
    )
    imported = await alice.post(
        "/api/v1/characters/import",
        files={"file": ("card.json", card, "application/json")},
        data={"visibility": "public"},
    )
    assert imported.status_code == 201, imported.text
    character_id = imported.json()["id"]
    await _chat(bob, character_id)
    deleted = await alice.request("DELETE", "/api/v1/me", json={"password": PASSWORD})
    assert deleted.json()["characters_anonymised"] == 1
    async with api.container.database.read() as tx:
        row = (
            (await tx.execute(select(characters).where(characters.c.id == character_id)))
            .mappings()
            .one()
        )
    assert row["creator"] == ""
    assert row["card"]["data"]["creator"] == ""
    assert "Alice Realname" not in str(row["card"])


async def test_pictures_go_with_her_deleted_characters_and_stay_on_the_kept_one(
    api: Api,
) -> None:
    alice = await api.user("alice")
    bob = await api.user("bob")
    avatar = data_url(picture(64, 48))
    shared = await _character(alice, "Shared", visibility="public", avatar=avatar)
    diary = await _character(alice, "Diary", visibility="private", avatar=avatar)
    await _chat(bob, shared["id"])
    user_id = (await alice.get("/api/v1/me")).json()["id"]
    assert await _count(api, images, images.c.owner_id == user_id) == 2

    deleted = await alice.request("DELETE", "/api/v1/me", json={"password": PASSWORD})
    assert deleted.status_code == 200, deleted.text

    assert await _count(api, images, images.c.character_id == diary["id"]) == 0
    assert_problem(await bob.get(diary["avatar_urls"]["64"]), 404, "not_found")
    kept = await bob.get(shared["avatar_urls"]["64"])
    assert kept.status_code == 200 and kept.headers["content-type"].startswith("image/")
