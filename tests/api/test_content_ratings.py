"""The age declaration and the mature gate: who finds, opens and chats with a mature
character."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx

from conftest import Api, assert_problem

GATE = "adult_confirmation_required"


def _years_ago(years: int, days: int = 0) -> str:
    today = date.today()
    try:
        then = today.replace(year=today.year - years)
    except ValueError:  # 29 February
        then = today.replace(year=today.year - years, day=28)
    return (then - timedelta(days=days)).isoformat()


async def _create(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/characters", json={"name": "Vesper", "first_message": "Hello.", **fields}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _declare(client: httpx.AsyncClient, birth_date: Any) -> httpx.Response:
    return await client.post("/api/v1/me/age", json={"birth_date": birth_date})


async def _adult(api: Api, name: str, *, show_mature: bool = False) -> httpx.AsyncClient:
    client = await api.user(name)
    declared = await _declare(client, _years_ago(30))
    assert declared.status_code == 200, declared.text
    if show_mature:
        shown = await client.patch("/api/v1/me", json={"show_mature": True})
        assert shown.status_code == 200, shown.text
    return client


async def _listed(client: httpx.AsyncClient, **params: Any) -> set[str]:
    response = await client.get("/api/v1/characters", params=params)
    assert response.status_code == 200, response.text
    return {c["name"] for c in response.json()["items"]}


async def test_a_new_account_is_not_adult_and_an_adult_declaration_confirms_it(api: Api) -> None:
    client = await api.user("dana")
    me = (await client.get("/api/v1/me")).json()
    assert (me["adult"], me["age_declared_at"], me["show_mature"]) == (False, None, False)

    declared = await _declare(client, _years_ago(18))  # 18 today
    assert declared.status_code == 200, declared.text
    assert declared.json()["adult"] is True
    me = (await client.get("/api/v1/me")).json()
    assert me["adult"] is True and me["age_declared_at"] is not None
    # The birth date itself is not kept anywhere the account shows.
    assert _years_ago(18) not in str(me)


async def test_bad_birth_dates_are_refused_and_nothing_is_stored(api: Api) -> None:
    client = await api.user("erin")
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    for bad in ("2001-02-30", "2001-13-01", "01/02/2001", "20010102", "", "yesterday", 0, None):
        assert_problem(await _declare(client, bad), 422, "validation_error")
    body = assert_problem(await _declare(client, tomorrow), 422, "validation_error")
    assert body["errors"][0]["field"] == "birth_date"
    assert_problem(await _declare(client, "1850-01-01"), 422, "validation_error")
    assert_problem(
        await client.post("/api/v1/me/age", json={"confirm_adult": True}), 422, "validation_error"
    )
    me = (await client.get("/api/v1/me")).json()
    assert (me["adult"], me["age_declared_at"]) == (False, None)
    # None of it counted as the one declaration: a good one still goes through.
    assert (await _declare(client, _years_ago(40))).json()["adult"] is True


async def test_a_minor_cannot_become_adult_by_declaring_again_until_an_admin_clears_it(
    api: Api,
) -> None:
    minor = await api.user("fenn")
    declared = await _declare(minor, _years_ago(18, days=-1))  # 18 tomorrow
    assert declared.status_code == 200, declared.text
    assert declared.json()["adult"] is False
    assert declared.json()["age_declared_at"] is not None
    body = assert_problem(await _declare(minor, _years_ago(30)), 409, "age_already_declared")
    assert "admin" in body["detail"]
    assert_problem(
        await minor.patch("/api/v1/me", json={"show_mature": True}),
        403,
        "adult_confirmation_required",
    )
    assert (await minor.get("/api/v1/me")).json()["adult"] is False
    # An adult cannot change theirs either.
    adult = await _adult(api, "gale")
    assert_problem(await _declare(adult, _years_ago(12)), 409, "age_already_declared")
    assert (await adult.get("/api/v1/me")).json()["adult"] is True

    fenn = (await minor.get("/api/v1/me")).json()
    assert_problem(await adult.delete(f"/api/v1/admin/users/{fenn['id']}/age"), 403, "forbidden")
    admin = await api.user("root")
    await api.container.accounts.set_role("root", "admin")
    cleared = await admin.delete(f"/api/v1/admin/users/{fenn['id']}/age")
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["age_declared_at"] is None
    assert (await _declare(minor, _years_ago(19))).json()["adult"] is True


async def test_only_an_adult_turns_mature_characters_on_and_anybody_turns_them_off(
    api: Api,
) -> None:
    client = await api.user("hale")
    refused = await client.patch("/api/v1/me", json={"show_mature": True})
    assert_problem(refused, 403, GATE)
    assert (await client.patch("/api/v1/me", json={"show_mature": False})).status_code == 200
    assert_problem(
        await client.patch("/api/v1/me", json={"show_mature": "yes"}), 422, "validation_error"
    )
    assert_problem(await client.patch("/api/v1/me", json={}), 422, "validation_error")
    await _declare(client, _years_ago(25))
    on = await client.patch("/api/v1/me", json={"show_mature": True})
    assert on.status_code == 200 and on.json()["show_mature"] is True
    assert (await client.get("/api/v1/me")).json()["show_mature"] is True


async def test_chatting_with_a_mature_character_needs_a_confirmed_adult(api: Api) -> None:
    creator = await _adult(api, "ivo")
    mature = await _create(creator, name="Nocturne", rating="mature")
    teen = await _create(creator, name="Sprout", rating="teen")

    undeclared = await api.user("jory")
    body = assert_problem(
        await undeclared.post("/api/v1/chats", json={"character_id": mature["id"]}), 403, GATE
    )
    assert "18" in body["detail"] and "account page" in body["detail"]
    minor = await api.user("kit")
    await _declare(minor, _years_ago(15))
    assert_problem(
        await minor.post("/api/v1/chats", json={"character_id": mature["id"]}), 403, GATE
    )
    assert (await minor.get("/api/v1/chats")).json()["items"] == []
    # Teen characters are open to everybody.
    assert (await minor.post("/api/v1/chats", json={"character_id": teen["id"]})).status_code == 201

    adult = await _adult(api, "lane")
    started = await adult.post("/api/v1/chats", json={"character_id": mature["id"]})
    assert started.status_code == 201, started.text
    chat = started.json()
    assert chat["character_rating"] == "mature"
    sent = await adult.put(f"/api/v1/chats/{chat['id']}/messages/m1", json={"content": "Hi"})
    assert sent.status_code == 202, sent.text


async def test_a_send_to_a_character_rated_mature_later_is_refused_and_not_stored(
    api: Api,
) -> None:
    creator = await _adult(api, "mora")
    character = await _create(creator, name="Turncoat", rating="general")
    minor = await api.user("nell")
    await _declare(minor, _years_ago(16))
    chat = (await minor.post("/api/v1/chats", json={"character_id": character["id"]})).json()
    path = f"/api/v1/chats/{chat['id']}/messages"
    patched = await creator.patch(
        f"/api/v1/characters/{character['id']}", json={"rating": "mature"}
    )
    assert patched.status_code == 200, patched.text

    assert_problem(await minor.put(f"{path}/m1", json={"content": "Hello"}), 403, GATE)
    history = (await minor.get(path)).json()["items"]
    assert [m["role"] for m in history] == ["assistant"]  # the greeting only
    greeting = history[0]
    assert_problem(await minor.post(f"/api/v1/messages/{greeting['id']}/swipes"), 403, GATE)


async def test_the_owner_of_a_mature_character_sees_it_but_chats_only_as_an_adult(
    api: Api,
) -> None:
    owner = await api.user("oren")
    mine = await _create(owner, name="Mine", rating="mature")
    assert (await owner.get(f"/api/v1/characters/{mine['id']}")).status_code == 200
    assert "Mine" in await _listed(owner)
    assert "Mine" in await _listed(owner, owner="me")
    assert_problem(await owner.post("/api/v1/chats", json={"character_id": mine["id"]}), 403, GATE)


async def test_discovery_lists_mature_characters_only_to_adults_who_turned_them_on(
    api: Api,
) -> None:
    creator = await _adult(api, "pia")
    await _create(creator, name="Plain", rating="general")
    await _create(creator, name="Young", rating="teen")
    mature = await _create(creator, name="Night", rating="mature", tags=["noir"])
    staff = await api.user("quill")
    await api.container.accounts.set_role("quill", "moderator")
    featured = await staff.put(f"/api/v1/characters/{mature['id']}/featured")
    assert featured.status_code == 200, featured.text

    anonymous = api.client()
    minor = await api.user("rae")
    await _declare(minor, _years_ago(14))
    adult_off = await _adult(api, "sol")
    adult_on = await _adult(api, "tam", show_mature=True)
    hidden = {"Plain", "Young"}
    for viewer in (anonymous, minor, adult_off):
        assert await _listed(viewer) == hidden
        assert await _listed(viewer, q="night") == set()
        assert await _listed(viewer, tag="noir") == set()
        assert await _listed(viewer, featured="true") == set()
        assert await _listed(viewer, sort="popular") == hidden
        assert await _listed(viewer, owner=creator_id(await creator.get("/api/v1/me"))) == hidden
    assert await _listed(adult_on) == hidden | {"Night"}
    assert await _listed(adult_on, featured="true") == {"Night"}
    assert await _listed(adult_on, tag="noir") == {"Night"}
    # Turning it off hides them again.
    await adult_on.patch("/api/v1/me", json={"show_mature": False})
    assert await _listed(adult_on) == hidden


def creator_id(response: httpx.Response) -> str:
    return str(response.json()["id"])


async def test_a_mature_characters_page_and_card_are_for_adults_and_its_owner(api: Api) -> None:
    creator = await api.user("uma")
    # Its creator shows the definition, so only the rating can refuse the card.
    mature = await _create(creator, name="Velvet", rating="mature", definition_visible=True)
    path = f"/api/v1/characters/{mature['id']}"
    anonymous = api.client()
    body = assert_problem(await anonymous.get(path), 403, GATE)
    assert "Log in" in body["detail"]
    assert_problem(await anonymous.get(f"{path}/card.json"), 403, GATE)
    minor = await api.user("vic")
    await _declare(minor, _years_ago(17))
    assert_problem(await minor.get(path), 403, GATE)
    adult = await _adult(api, "wynn")  # setting off: not listed, but reachable by link
    assert (await adult.get(path)).json()["rating"] == "mature"
    assert (await adult.get(f"{path}/card.json")).status_code == 200
    assert (await creator.get(f"{path}/card.json")).status_code == 200
