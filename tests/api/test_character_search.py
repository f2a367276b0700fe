"""Listing characters: text search, tags, sort order and pages."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conftest import Api
from personae.storage.repos import characters as character_repo


async def _create(client: httpx.AsyncClient, name: str, **fields: Any) -> str:
    response = await client.post("/api/v1/characters", json={"name": name, **fields})
    assert response.status_code == 201, response.text
    character_id: str = response.json()["id"]
    return character_id


async def _names(client: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await client.get("/api/v1/characters", params=params)
    assert response.status_code == 200, response.text
    return [character["name"] for character in response.json()["items"]]


async def test_q_matches_name_tagline_and_description_ignoring_case(api: Api) -> None:
    alice = await api.user("alice")
    await _create(alice, "Dragon Keeper")
    await _create(alice, "Bramble", tagline="A fox who keeps DRAGONS away")
    await _create(alice, "Ren", description="Hunts a dragon in the neon city")
    await _create(alice, "Sunny", personality="dragon-like")  # personality is not searched
    assert sorted(await _names(alice, q="dRaGoN")) == ["Bramble", "Dragon Keeper", "Ren"]
    assert await _names(alice, q="  keeper ") == ["Dragon Keeper"]
    assert await _names(alice, q="unicorn") == []


@pytest.mark.parametrize(("query", "expected"), [("%", ["100% real"]), ("_", ["snake_case"])])
async def test_like_wildcards_in_q_are_literal(api: Api, query: str, expected: list[str]) -> None:
    alice = await api.user("alice")
    for name in ("100% real", "snake_case", "plain"):
        await _create(alice, name)
    assert await _names(alice, q=query) == expected


async def test_a_backslash_in_q_is_literal(api: Api) -> None:
    alice = await api.user("alice")
    await _create(alice, "back\\slash")
    await _create(alice, "plain")
    assert await _names(alice, q="\\") == ["back\\slash"]


async def test_tag_filter_ignores_case(api: Api) -> None:
    alice = await api.user("alice")
    await _create(alice, "Ilsa", tags=["Fantasy", "Adventure"])
    await _create(alice, "Ren", tags=["noir"])
    assert await _names(alice, tag="FANTASY") == ["Ilsa"]
    assert await _names(alice, tag="adventure") == ["Ilsa"]
    assert await _names(alice, tag="fan") == []


async def test_tag_filter_follows_edits(api: Api) -> None:
    alice = await api.user("alice")
    character_id = await _create(alice, "Ilsa", tags=["fantasy"])
    await alice.patch(f"/api/v1/characters/{character_id}", json={"tags": ["scifi"]})
    assert await _names(alice, tag="fantasy") == []
    assert await _names(alice, tag="scifi") == ["Ilsa"]


async def test_sort_new_and_popular(api: Api) -> None:
    alice = await api.user("alice")
    ids = {name: await _create(alice, name) for name in ("first", "second", "third")}
    async with api.container.database.write() as tx:
        await character_repo.add_chat_count(tx, ids["first"], 5)
        await character_repo.add_chat_count(tx, ids["second"], 9)
    assert await _names(alice, sort="new") == ["third", "second", "first"]
    assert await _names(alice) == ["third", "second", "first"]
    assert await _names(alice, sort="popular") == ["second", "first", "third"]


async def test_limit_and_offset_page_through_the_list(api: Api) -> None:
    alice = await api.user("alice")
    for number in range(5):
        await _create(alice, f"c{number}")
    page = await alice.get("/api/v1/characters", params={"limit": 2, "offset": 2})
    body = page.json()
    assert (body["limit"], body["offset"]) == (2, 2)
    assert [c["name"] for c in body["items"]] == ["c2", "c1"]
    assert await _names(alice, limit=2, offset=4) == ["c0"]
    assert await _names(alice, limit=2, offset=6) == []


async def test_q_ignores_case_beyond_ascii(api: Api) -> None:
    alice = await api.user("alice")
    await _create(alice, "Émile Zola")
    await _create(alice, "Кира")
    assert await _names(alice, q="émile") == ["Émile Zola"]
    assert await _names(alice, q="КИРА") == ["Кира"]
