"""A character's definition is its creator's to show: with `definition_visible` off
(the default) others get its public face only, from the character page, the lists
and the card export alike; its creator and the moderators see all of it."""

from __future__ import annotations

from typing import Any

from conftest import Api, assert_problem

DEFINITION = {
    "description": "DEF-DESCRIPTION",
    "personality": "DEF-PERSONALITY",
    "scenario": "DEF-SCENARIO",
    "example_dialogues": "DEF-EXAMPLES",
    "system_prompt": "DEF-SYSTEM",
    "post_history_instructions": "DEF-AFTER",
}
BOOK = {"name": "Secrets", "entries": [{"keys": ["harbour"], "content": "DEF-LORE", "id": 1}]}
FACE = {"name": "Ilsa", "tagline": "A harbour pilot", "first_message": "Ahoy.", "tags": ["sea"]}


def _definition_shown(character: dict[str, Any]) -> bool:
    shown = [character[field] == text for field, text in DEFINITION.items()]
    assert all(shown) or not any(shown), character  # all of it or none of it
    return all(shown) and character["character_book"] is not None


async def test_others_get_the_public_face_only_until_the_creator_shows_the_definition(
    api: Api,
) -> None:
    alice, bob = await api.user("alice"), await api.user("bob")
    anonymous = api.client()
    created = await alice.post(
        "/api/v1/characters", json={**FACE, **DEFINITION, "character_book": BOOK}
    )
    assert created.status_code == 201, created.text
    path = f"/api/v1/characters/{created.json()['id']}"

    assert _definition_shown((await alice.get(path)).json()), "the creator sees it all"
    for viewer in (bob, anonymous):
        page = (await viewer.get(path)).json()
        assert not _definition_shown(page)
        assert {key: page[key] for key in FACE} == FACE, "the public face stays"
        listed = (await viewer.get("/api/v1/characters", params={"q": "Ilsa"})).json()["items"]
        assert [c["id"] for c in listed] == [created.json()["id"]]
        assert not _definition_shown(listed[0])
        for kind in ("json", "png", "charx"):
            refused = await viewer.get(f"{path}/card.{kind}")
            assert_problem(refused, 403, "definition_hidden")

    shown = await alice.patch(path, json={"definition_visible": True})
    assert shown.status_code == 200, shown.text
    assert _definition_shown((await bob.get(path)).json())
    exported = await bob.get(f"{path}/card.json")
    assert exported.status_code == 200, exported.text
    assert exported.json()["data"]["system_prompt"] == "DEF-SYSTEM"


async def test_moderators_see_the_definition_they_must_judge(api: Api) -> None:
    alice = await api.user("alice")
    mona = await api.user("mona")
    await api.container.accounts.set_role("mona", "moderator")
    created = await alice.post("/api/v1/characters", json={**FACE, **DEFINITION})
    page = (await mona.get(f"/api/v1/characters/{created.json()['id']}")).json()
    assert page["system_prompt"] == "DEF-SYSTEM"
