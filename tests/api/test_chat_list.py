"""The list of chats shows each chat's character avatar and its last message (one line,
who wrote it, when), read in one query however many chats there are."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event

from conftest import Api
from personae.storage.db import Database

PNG_AVATAR = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8"
    "z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


async def _character(client: httpx.AsyncClient, **fields: Any) -> str:
    body = {"name": "Bramble", "first_message": "Welcome in!", **fields}
    response = await client.post("/api/v1/characters", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _chat(client: httpx.AsyncClient, character_id: str) -> str:
    response = await client.post("/api/v1/chats", json={"character_id": character_id})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@contextmanager
def _statements(database: Database) -> Iterator[list[str]]:
    """The SQL statements run meanwhile (on this app's engine)."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_each_chat_shows_its_avatar_and_last_message(api: Api) -> None:
    alice = await api.user("alice")
    fox = await _character(alice, avatar=PNG_AVATAR)
    chat_id = await _chat(alice, fox)
    [item] = (await alice.get("/api/v1/chats")).json()["items"]
    # The uploaded picture is stored: the list gives its served sizes, as characters do.
    character = (await alice.get(f"/api/v1/characters/{fox}")).json()
    assert item["character_avatar"] == character["avatar"]
    assert item["character_avatar_urls"] == character["avatar_urls"]
    small = await alice.get(item["character_avatar_urls"]["64"])
    assert small.status_code == 200 and small.headers["content-type"].startswith("image/")
    assert item["last_message"] == "Welcome in!"
    assert item["last_message_role"] == "assistant"
    assert item["last_message_at"] is not None

    # A long reply on several lines: its start, on one line.
    [greeting] = (await alice.get(f"/api/v1/chats/{chat_id}/messages")).json()["items"]
    long_text = "*waves*\n\n" + "word " * 100
    edited = await alice.patch(f"/api/v1/messages/{greeting['id']}", json={"content": long_text})
    assert edited.status_code == 200, edited.text
    [item] = (await alice.get("/api/v1/chats")).json()["items"]
    assert item["last_message"].startswith("*waves* word word")
    assert "\n" not in item["last_message"]
    assert len(item["last_message"]) <= 200


async def test_the_users_message_is_last_until_a_reply_has_text(api: Api) -> None:
    alice = await api.user("alice")
    chat_id = await _chat(alice, await _character(alice))
    sent = await alice.put(f"/api/v1/chats/{chat_id}/messages/c1", json={"content": "Hello!"})
    assert sent.status_code == 202, sent.text  # no backend here: the reply waits, empty
    [item] = (await alice.get("/api/v1/chats")).json()["items"]
    assert (item["last_message"], item["last_message_role"]) == ("Hello!", "user")
    assert item["character_avatar"] is None and item["character_avatar_urls"] is None


async def test_a_chat_without_messages_and_a_deleted_last_message(api: Api) -> None:
    alice = await api.user("alice")
    quiet = await _chat(alice, await _character(alice, name="Quiet", first_message=""))
    [item] = (await alice.get("/api/v1/chats")).json()["items"]
    assert item["id"] == quiet and item["last_message"] is None
    assert item["last_message_at"] is None

    chat_id = await _chat(alice, await _character(alice))
    [greeting] = (await alice.get(f"/api/v1/chats/{chat_id}/messages")).json()["items"]
    assert (await alice.delete(f"/api/v1/messages/{greeting['id']}")).status_code == 204
    items = (await alice.get("/api/v1/chats")).json()["items"]
    assert [item["last_message"] for item in items] == [None, None]


async def test_the_list_is_one_query_however_many_chats(api: Api) -> None:
    alice = await api.user("alice")
    character_id = await _character(alice)
    await _chat(alice, character_id)
    with _statements(api.container.database) as one_chat:
        assert len((await alice.get("/api/v1/chats")).json()["items"]) == 1
    for _ in range(5):
        await _chat(alice, character_id)
    with _statements(api.container.database) as six_chats:
        assert len((await alice.get("/api/v1/chats")).json()["items"]) == 6
    # (Other statements, the session's, vary with timing: only these are counted.)
    for seen in (one_chat, six_chats):
        assert sum(" messages" in statement for statement in seen) == 1, seen
        assert sum(" characters" in statement for statement in seen) == 1, seen


async def test_other_peoples_chats_are_not_listed(api: Api) -> None:
    alice = await api.user("alice")
    bob = await api.user("bob")
    await _chat(alice, await _character(alice))
    assert (await bob.get("/api/v1/chats")).json()["items"] == []
