"""Prompt inspection shows a chat's owner only what they may see of the character."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from conftest import fleet, wait_for_reply
from personae.services.prompt_inspection import HIDDEN_MARKERS
from personae.settings import Settings

BOOK = {
    "name": "Secrets",
    "entries": [
        {
            "keys": [],
            "content": "LORE-OLD: the town is called Saltmere.",
            "constant": True,
            "enabled": True,
            "insertion_order": 0,
            "id": "old-lore-entry",
        }
    ],
}
CHARACTER = {
    "name": "Ilsa",
    "description": "DEF-DESCRIPTION: a harbour pilot.",
    "personality": "DEF-PERSONALITY",
    "scenario": "DEF-SCENARIO",
    "example_dialogues": "DEF-EXAMPLES",
    "system_prompt": "DEF-SYSTEM: you are {{char}}.",
    "post_history_instructions": "DEF-AFTER: be brief.",
    "character_book": BOOK,
}
PRIVATE_BOOK = {
    "name": "Secrets",
    "entries": [
        {
            "keys": [],
            "content": "SECRET-LORE: the pilot is a smuggler.",
            "constant": True,
            "enabled": True,
            "insertion_order": 0,
            "id": "SECRET-ENTRY-NAME",
        }
    ],
}
PRIVATE_REWRITE = {
    "visibility": "private",
    "system_prompt": "SECRET-SYSTEM",
    "description": "SECRET-DESCRIPTION",
    "post_history_instructions": "SECRET-AFTER",
    "character_book": PRIVATE_BOOK,
}


async def _reply(client: httpx.AsyncClient, character_id: str, text: str) -> str:
    chat = await client.post(
        "/api/v1/chats",
        json={
            "character_id": character_id,
            "persona": {"name": "Bob", "description": "VIEWER-PERSONA: a sailor."},
        },
    )
    assert chat.status_code == 201, chat.text
    chat_id = chat.json()["id"]
    sent = await client.put(f"/api/v1/chats/{chat_id}/messages/m1", json={"content": text})
    assert sent.status_code == 202, sent.text
    reply = await wait_for_reply(client, chat_id, sent.json()["reply"]["id"])
    assert reply["status"] == "complete", reply
    return str(reply["id"])


async def _prompt(client: httpx.AsyncClient, reply_id: str) -> dict[str, Any]:
    shown = await client.get(f"/api/v1/messages/{reply_id}/prompt")
    assert shown.status_code == 200, shown.text
    return dict(shown.json())


def _assert_hidden(body: dict[str, Any], definition: str, words: tuple[str, ...]) -> None:
    assert body["definition"] == definition
    text = json.dumps(body)
    for word in words:
        assert word not in text, (word, body)
    system = body["parts"][0]
    assert system["redacted"] is True
    assert HIDDEN_MARKERS[definition] in system["content"]  # type: ignore[index]
    # The viewer's own text stays: their persona and their message.
    assert "VIEWER-PERSONA: a sailor." in system["content"]
    assert body["parts"][-2]["content"] == "VIEWER-MESSAGE about the harbour"
    after = body["parts"][-1]
    assert after["source"] == "post_history_instructions" and after["redacted"] is True
    assert [key for key, _tokens in body["included"]["lore"]] == [None]


async def test_others_see_a_definition_only_while_its_creator_shows_it(
    make_settings: Callable[..., Settings],
) -> None:
    definition = ("DEF-", "LORE-OLD", "old-lore-entry")
    secrets = ("SECRET",)
    async with fleet(make_settings, {"a": {"tokens_per_second": 2000}}) as (api, _urls):
        alice = await api.user("alice")
        bob = await api.user("bob")
        created = await alice.post("/api/v1/characters", json=CHARACTER)
        assert created.status_code == 201, created.text
        assert created.json()["definition_visible"] is False  # off for a new character
        path = f"/api/v1/characters/{created.json()['id']}"
        reply_id = await _reply(bob, created.json()["id"], "VIEWER-MESSAGE about the harbour")

        _assert_hidden(await _prompt(bob, reply_id), "hidden_by_creator", definition)

        shown = await alice.patch(path, json={"definition_visible": True})
        assert shown.json()["definition_visible"] is True
        body = await _prompt(bob, reply_id)
        assert body["definition"] == "shown" and not body["parts"][0]["redacted"]
        system = body["parts"][0]["content"]
        assert "DEF-SYSTEM: you are Ilsa." in system and "LORE-OLD" in system
        assert "VIEWER-PERSONA" in system
        assert body["parts"][-1]["content"] == "DEF-AFTER: be brief."
        assert [key for key, _tokens in body["included"]["lore"]] == ["old-lore-entry"]

        # Made private and rewritten: nothing of it reaches Bob, old or new.
        assert (await alice.patch(path, json=PRIVATE_REWRITE)).status_code == 200
        _assert_hidden(await _prompt(bob, reply_id), "character_unavailable", definition + secrets)

        # Public again but deleted: the same.
        assert (await alice.patch(path, json={"visibility": "public"})).status_code == 200
        assert (await _prompt(bob, reply_id))["definition"] == "shown"
        assert (await alice.delete(path)).status_code == 204
        _assert_hidden(await _prompt(bob, reply_id), "character_unavailable", definition + secrets)


async def test_the_creator_sees_all_of_their_own_characters_prompt(
    make_settings: Callable[..., Settings],
) -> None:
    async with fleet(make_settings, {"a": {"tokens_per_second": 2000}}) as (api, _urls):
        alice = await api.user("alice")
        created = await alice.post("/api/v1/characters", json={**CHARACTER, **PRIVATE_REWRITE})
        assert created.status_code == 201, created.text
        reply_id = await _reply(alice, created.json()["id"], "VIEWER-MESSAGE about the harbour")
        body = await _prompt(alice, reply_id)
        assert body["definition"] == "shown"
        assert not any(part["redacted"] for part in body["parts"])
        system = body["parts"][0]["content"]
        assert "SECRET-SYSTEM" in system and "SECRET-LORE" in system
        assert "VIEWER-PERSONA" in system
        assert body["parts"][-1]["content"] == "SECRET-AFTER"
        assert [key for key, _tokens in body["included"]["lore"]] == ["SECRET-ENTRY-NAME"]
        # Deleting it takes nothing from its creator's own view.
        assert (await alice.delete(f"/api/v1/characters/{created.json()['id']}")).status_code == 204
        assert (await _prompt(alice, reply_id))["definition"] == "shown"
