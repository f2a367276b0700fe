"""CSRF protection of cookie-authenticated writes, and API tokens for scripts."""

from __future__ import annotations

from conftest import Api, assert_problem


async def test_cookie_writes_without_the_csrf_header_are_refused_and_change_nothing(
    api: Api,
) -> None:
    alice = await api.user("alice")
    created = await alice.post("/api/v1/characters", json={"name": "Ilsa"})
    character = created.json()
    path = f"/api/v1/characters/{character['id']}"
    del alice.headers["X-CSRF-Token"]

    for wrong in (None, "not-the-token"):
        headers = {"X-CSRF-Token": wrong} if wrong else {}
        responses = [
            await alice.post("/api/v1/characters", json={"name": "Other"}, headers=headers),
            await alice.patch(path, json={"name": "Changed"}, headers=headers),
            await alice.delete(path, headers=headers),
            await alice.post("/api/v1/tokens", json={"name": "script"}, headers=headers),
            await alice.post("/api/v1/auth/logout", headers=headers),
        ]
        for response in responses:
            assert_problem(response, 403, "csrf_failed")

    assert (await alice.get(path)).json() == character
    mine = await alice.get("/api/v1/characters", params={"owner": "me"})
    assert [c["name"] for c in mine.json()["items"]] == ["Ilsa"]
    assert (await alice.get("/api/v1/tokens")).json() == []
    assert (await alice.get("/api/v1/me")).status_code == 200  # still logged in


async def test_a_bearer_token_needs_no_csrf_header(api: Api) -> None:
    alice = await api.user("alice")
    token = (await alice.post("/api/v1/tokens", json={"name": "script"})).json()["token"]
    script = api.bearer(token)
    created = await script.post("/api/v1/characters", json={"name": "Ilsa"})
    assert created.status_code == 201, created.text
    assert created.json()["owner_username"] == "alice"
    deleted = await script.delete(f"/api/v1/characters/{created.json()['id']}")
    assert deleted.status_code == 204


async def test_api_tokens_are_shown_once_listed_and_revoked(api: Api) -> None:
    alice = await api.user("alice")
    response = await alice.post("/api/v1/tokens", json={"name": "backup script"})
    assert response.status_code == 201, response.text
    created = response.json()
    token = created["token"]
    assert token.startswith(created["prefix"])
    assert created["name"] == "backup script"

    script = api.bearer(token)
    assert (await script.get("/api/v1/me")).json()["username"] == "alice"

    listed = (await alice.get("/api/v1/tokens")).json()
    assert [t["id"] for t in listed] == [created["id"]]
    assert "token" not in listed[0]
    assert token not in (await alice.get("/api/v1/tokens")).text
    assert listed[0]["last_used_at"] is not None

    revoked = await alice.delete(f"/api/v1/tokens/{created['id']}")
    assert revoked.status_code == 204
    assert_problem(await script.get("/api/v1/me"), 401, "not_authenticated")
    assert (await alice.get("/api/v1/tokens")).json() == []
    assert_problem(await alice.delete(f"/api/v1/tokens/{created['id']}"), 404, "not_found")


async def test_a_token_can_only_be_revoked_by_its_owner(api: Api) -> None:
    alice = await api.user("alice")
    bob = await api.user("bob")
    created = (await alice.post("/api/v1/tokens", json={"name": "mine"})).json()
    assert_problem(await bob.delete(f"/api/v1/tokens/{created['id']}"), 404, "not_found")
    assert (await api.bearer(created["token"]).get("/api/v1/me")).status_code == 200


async def test_unknown_or_malformed_bearer_tokens_are_401(api: Api) -> None:
    for header in ("Bearer pk_not-a-real-token", "Bearer x", "Basic YWxpY2U6cHc="):
        client = api.client()
        client.headers["Authorization"] = header
        assert_problem(await client.get("/api/v1/me"), 401, "not_authenticated")


async def test_a_bearer_token_wins_over_a_cookie(api: Api) -> None:
    alice = await api.user("alice")
    bob = await api.user("bob")
    token = (await bob.post("/api/v1/tokens", json={"name": "t"})).json()["token"]
    alice.headers["Authorization"] = f"Bearer {token}"
    assert (await alice.get("/api/v1/me")).json()["username"] == "bob"
