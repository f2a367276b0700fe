"""Creating, reading, changing and deleting characters, and who may see them."""

from __future__ import annotations

from typing import Any

import httpx

from conftest import Api, assert_problem

FULL_CHARACTER: dict[str, Any] = {
    "name": "Captain Ilsa Varga",
    "tagline": "Airship captain",
    "description": "{{char}} commands the Kestrel.",
    "personality": "wry, decisive",
    "scenario": "{{user}} buys passage.",
    "first_message": "*taps the crate* Welcome aboard, {{user}}.",
    "alternate_greetings": ["Hold the rail!", "First flight?"],
    "example_dialogues": "<START>\n{{user}}: Where to?\n{{char}}: Port Sable.",
    "system_prompt": "Stay in character.",
    "post_history_instructions": "Keep replies short.",
    "creator_notes": "Works best with adventure prompts.",
    "tags": ["Adventure", "steampunk"],
    "avatar": "https://images.example.com/bramble.png",
    "visibility": "unlisted",
    "definition_visible": True,
    "extensions": {
        "depth_prompt": {"prompt": "Remember the ledger.", "depth": 4, "role": "system"},
        "talkativeness": 0.5,
        "fav": False,
        "regex_scripts": [{"find": "/a/g", "replace": None}],
        "ünïcode": "✓",
    },
}


async def _create(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/characters", json={"name": "Bramble", **fields})
    assert response.status_code == 201, response.text
    character: dict[str, Any] = response.json()
    return character


async def test_every_field_is_stored_and_read_back_verbatim(api: Api) -> None:
    alice = await api.user("alice")
    created = await _create(alice, **FULL_CHARACTER)
    for name, value in FULL_CHARACTER.items():
        assert created[name] == value, name
    assert created["owner_username"] == "alice"
    assert created["chat_count"] == 0

    read = await alice.get(f"/api/v1/characters/{created['id']}")
    assert read.status_code == 200
    assert read.json() == created


async def test_only_a_name_is_required(api: Api) -> None:
    alice = await api.user("alice")
    created = await _create(alice)
    assert created["visibility"] == "public"
    assert created["definition_visible"] is False
    assert created["tags"] == [] and created["extensions"] == {} and created["avatar"] is None


async def test_patch_changes_only_the_fields_sent(api: Api) -> None:
    alice = await api.user("alice")
    created = await _create(alice, **FULL_CHARACTER)
    path = f"/api/v1/characters/{created['id']}"

    response = await alice.patch(path, json={"tagline": "Retired captain", "tags": ["cozy"]})
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["tagline"] == "Retired captain"
    assert updated["tags"] == ["cozy"]
    unchanged = {k: v for k, v in created.items() if k not in {"tagline", "tags", "updated_at"}}
    assert {k: updated[k] for k in unchanged} == unchanged
    assert (await alice.get(path)).json() == updated

    cleared = await alice.patch(path, json={"avatar": None})
    assert cleared.json()["avatar"] is None


async def test_patch_with_null_for_a_required_field_is_refused(api: Api) -> None:
    alice = await api.user("alice")
    created = await _create(alice, **FULL_CHARACTER)
    path = f"/api/v1/characters/{created['id']}"
    for field in ("name", "extensions", "tags"):
        response = await alice.patch(path, json={field: None})
        body = assert_problem(response, 422, "validation_error")
        assert field in [error["field"] for error in body["errors"]]
    assert (await alice.get(path)).json() == created


async def test_deleted_characters_are_gone(api: Api) -> None:
    alice = await api.user("alice")
    created = await _create(alice)
    path = f"/api/v1/characters/{created['id']}"
    assert (await alice.delete(path)).status_code == 204
    assert_problem(await alice.get(path), 404, "not_found")
    assert_problem(await alice.patch(path, json={"name": "Back"}), 404, "not_found")
    assert_problem(await alice.delete(path), 404, "not_found")
    listed = await alice.get("/api/v1/characters", params={"owner": "me"})
    assert listed.json()["items"] == []


async def test_anonymous_visitors_read_public_characters_but_cannot_write(api: Api) -> None:
    alice = await api.user("alice")
    created = await _create(alice)
    visitor = api.client()
    assert (await visitor.get(f"/api/v1/characters/{created['id']}")).json() == created
    assert [c["id"] for c in (await visitor.get("/api/v1/characters")).json()["items"]] == [
        created["id"]
    ]
    response = await visitor.post("/api/v1/characters", json={"name": "Mine"})
    assert_problem(response, 401, "not_authenticated")
    patched = await visitor.patch(f"/api/v1/characters/{created['id']}", json={"name": "X"})
    assert_problem(patched, 401, "not_authenticated")


async def test_another_users_private_character_does_not_exist_for_them(api: Api) -> None:
    alice = await api.user("alice")
    bob = await api.user("bob")
    secret = await _create(alice, name="Secret", visibility="private")
    path = f"/api/v1/characters/{secret['id']}"

    for client in (bob, api.client()):
        assert_problem(await client.get(path), 404, "not_found")
        ids = [c["id"] for c in (await client.get("/api/v1/characters")).json()["items"]]
        assert secret["id"] not in ids
        listed = await client.get("/api/v1/characters", params={"owner": secret["owner_id"]})
        assert listed.json()["items"] == []
    assert_problem(await bob.patch(path, json={"name": "Mine now"}), 404, "not_found")
    assert_problem(await bob.delete(path), 404, "not_found")
    assert (await alice.get(path)).json() == secret


async def test_making_a_character_private_hides_it_at_once(api: Api) -> None:
    alice = await api.user("alice")
    bob = await api.user("bob")
    created = await _create(alice)
    path = f"/api/v1/characters/{created['id']}"
    assert (await bob.get(path)).status_code == 200
    assert (await alice.patch(path, json={"visibility": "private"})).status_code == 200
    assert_problem(await bob.get(path), 404, "not_found")
    assert (await bob.get("/api/v1/characters")).json()["items"] == []


async def test_unlisted_characters_are_reachable_by_id_only(api: Api) -> None:
    alice = await api.user("alice")
    bob = await api.user("bob")
    hidden = await _create(alice, name="Hidden", visibility="unlisted")
    assert (await bob.get(f"/api/v1/characters/{hidden['id']}")).json() == hidden
    assert (await bob.get("/api/v1/characters")).json()["items"] == []
    by_owner = await bob.get("/api/v1/characters", params={"owner": hidden["owner_id"]})
    assert by_owner.json()["items"] == []


async def test_owner_me_lists_all_of_my_characters(api: Api) -> None:
    alice = await api.user("alice")
    bob = await api.user("bob")
    names = ["Public", "Unlisted", "Private"]
    for name in names:
        await _create(alice, name=name, visibility=name.lower())
    await _create(bob, name="Bob's")
    mine = await alice.get("/api/v1/characters", params={"owner": "me"})
    assert sorted(c["name"] for c in mine.json()["items"]) == sorted(names)
    anonymous = await api.client().get("/api/v1/characters", params={"owner": "me"})
    assert anonymous.json()["items"] == []


async def test_another_users_public_character_cannot_be_changed(api: Api) -> None:
    alice = await api.user("alice")
    bob = await api.user("bob")
    created = await _create(alice)
    path = f"/api/v1/characters/{created['id']}"
    assert_problem(await bob.patch(path, json={"name": "Bob's now"}), 403, "forbidden")
    assert_problem(await bob.delete(path), 403, "forbidden")
    assert (await bob.get(path)).json() == created


async def test_an_admin_can_delete_anyones_public_character(api: Api) -> None:
    alice = await api.user("alice")
    admin = await api.user("root")
    await api.container.accounts.set_role("root", "admin")
    created = await _create(alice)
    path = f"/api/v1/characters/{created['id']}"
    assert (await admin.delete(path)).status_code == 204
    assert_problem(await alice.get(path), 404, "not_found")


async def test_moderators_and_admins_can_delete_private_characters(api: Api) -> None:
    alice = await api.user("alice")
    bob = await api.user("bob")
    staff = {}
    for name, role in (("mod", "moderator"), ("root", "admin")):
        staff[role] = await api.user(name)
        await api.container.accounts.set_role(name, role)
    for role, client in staff.items():
        created = await _create(alice, name=f"Hidden from the {role}", visibility="private")
        path = f"/api/v1/characters/{created['id']}"
        # Anybody else still finds nothing; staff may not read or rewrite it either.
        assert_problem(await bob.delete(path), 404, "not_found")
        assert_problem(await client.get(path), 404, "not_found")
        assert_problem(await client.patch(path, json={"name": "Mine"}), 404, "not_found")
        assert (await client.delete(path)).status_code == 204
        assert_problem(await alice.get(path), 404, "not_found")
        assert_problem(await client.delete(path), 404, "not_found")


async def test_a_moderator_can_delete_but_not_rewrite_anothers_character(api: Api) -> None:
    alice = await api.user("alice")
    moderator = await api.user("mod")
    await api.container.accounts.set_role("mod", "moderator")
    created = await _create(alice)
    path = f"/api/v1/characters/{created['id']}"
    assert_problem(await moderator.patch(path, json={"name": "Mine"}), 403, "forbidden")
    assert (await alice.get(path)).json() == created
    assert (await moderator.delete(path)).status_code == 204
