"""Moderators and admins feature public characters; the list can ask for them alone."""

from __future__ import annotations

from typing import Any

import httpx

from conftest import Api, assert_problem


async def _create(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/characters", json={"name": "Ilsa", **fields})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _staff(api: Api, name: str, role: str) -> httpx.AsyncClient:
    client = await api.user(name)
    await api.container.accounts.set_role(name, role)
    return client


async def _featured_ids(client: httpx.AsyncClient) -> list[str]:
    response = await client.get("/api/v1/characters", params={"featured": "true"})
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()["items"]]


async def test_a_moderator_features_and_unfeatures_a_public_character(api: Api) -> None:
    alice = await api.user("alice")
    moderator = await _staff(api, "mod", "moderator")
    shown = await _create(alice, name="Shown")
    other = await _create(alice, name="Other")
    assert shown["featured"] is False
    path = f"/api/v1/characters/{shown['id']}/featured"

    featured = await moderator.put(path)
    assert featured.status_code == 200, featured.text
    assert featured.json()["featured"] is True
    assert featured.json()["updated_at"] == shown["updated_at"]  # not an edit
    assert (await moderator.put(path)).json()["featured"] is True  # twice: the same
    anonymous = api.client()
    assert (await anonymous.get(f"/api/v1/characters/{shown['id']}")).json()["featured"] is True
    assert await _featured_ids(anonymous) == [shown["id"]]
    others = await anonymous.get("/api/v1/characters", params={"featured": "false"})
    assert [c["id"] for c in others.json()["items"]] == [other["id"]]
    everyone = await anonymous.get("/api/v1/characters")
    assert {c["id"] for c in everyone.json()["items"]} == {shown["id"], other["id"]}

    assert (await moderator.delete(path)).status_code == 204
    assert (await moderator.delete(path)).status_code == 204  # already not featured
    assert await _featured_ids(anonymous) == []
    assert (await anonymous.get(f"/api/v1/characters/{shown['id']}")).json()["featured"] is False


async def test_an_admin_may_feature_and_a_featured_character_made_private_leaves_the_row(
    api: Api,
) -> None:
    alice = await api.user("alice")
    admin = await _staff(api, "root", "admin")
    character = await _create(alice)
    path = f"/api/v1/characters/{character['id']}"
    assert (await admin.put(f"{path}/featured")).status_code == 200
    assert (await alice.patch(path, json={"visibility": "private"})).status_code == 200
    assert await _featured_ids(api.client()) == []
    # The owner's own list still says so; it comes back when public again.
    mine = await alice.get("/api/v1/characters", params={"owner": "me", "featured": "true"})
    assert [c["featured"] for c in mine.json()["items"]] == [True]
    assert (await alice.patch(path, json={"visibility": "public"})).status_code == 200
    assert await _featured_ids(api.client()) == [character["id"]]


async def test_a_moderator_takes_a_character_made_private_off_the_featured_row(
    api: Api,
) -> None:
    alice = await api.user("alice")
    moderator = await _staff(api, "mod", "moderator")
    character = await _create(alice)
    path = f"/api/v1/characters/{character['id']}"
    assert (await moderator.put(f"{path}/featured")).status_code == 200
    assert (await alice.patch(path, json={"visibility": "private"})).status_code == 200
    assert (await moderator.delete(f"{path}/featured")).status_code == 204
    assert (await alice.patch(path, json={"visibility": "public"})).status_code == 200
    assert await _featured_ids(api.client()) == []
    assert (await alice.get(path)).json()["featured"] is False


async def test_who_may_feature_what(api: Api) -> None:
    alice = await api.user("alice")
    moderator = await _staff(api, "mod", "moderator")
    plus = await _staff(api, "paying", "plus")
    public = await _create(alice)
    unlisted = await _create(alice, visibility="unlisted")
    private = await _create(alice, visibility="private")
    url = "/api/v1/characters/{}/featured"

    for method in ("PUT", "DELETE"):
        target = url.format(public["id"])
        assert_problem(await api.client().request(method, target), 401, "not_authenticated")
        # Not even the owner, nor a paying user: only staff choose.
        assert_problem(await alice.request(method, target), 403, "forbidden")
        assert_problem(await plus.request(method, target), 403, "forbidden")
        missing = url.format("01ARZ3NDEKTSV4RRFFQ69G5FAV")
        assert_problem(await moderator.request(method, missing), 404, "not_found")
    for hidden in (unlisted, private):
        body = assert_problem(
            await moderator.put(url.format(hidden["id"])), 409, "character_not_public"
        )
        assert hidden["visibility"] in body["detail"]
        assert (await moderator.delete(url.format(hidden["id"]))).status_code == 204
    # A cookie write without the CSRF header changes nothing.
    moderator_csrf = moderator.headers.pop("X-CSRF-Token")
    assert_problem(await moderator.put(url.format(public["id"])), 403, "csrf_failed")
    moderator.headers["X-CSRF-Token"] = moderator_csrf
    assert await _featured_ids(api.client()) == []


async def test_featured_is_not_a_field_the_creator_writes(api: Api) -> None:
    alice = await api.user("alice")
    created = await alice.post("/api/v1/characters", json={"name": "Ilsa", "featured": True})
    body = assert_problem(created, 422, "validation_error")
    assert "featured" in body["detail"]
    character = await _create(alice)
    patched = await alice.patch(f"/api/v1/characters/{character['id']}", json={"featured": True})
    assert_problem(patched, 422, "validation_error")
    listed = await alice.get("/api/v1/characters", params={"featured": "maybe"})
    assert_problem(listed, 422, "validation_error")
