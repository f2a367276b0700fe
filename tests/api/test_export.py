"""GET /api/v1/me/export: everything a user owns in one JSON download, nothing of anybody else."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from conftest import Api, assert_problem
from personae.services import export as export_service
from personae.storage.repos import chats as chat_repo
from personae.storage.repos import memories as memory_repo
from picture_samples import data_url, picture

AVATAR = data_url(picture(24, 24))


async def _character(client: httpx.AsyncClient, name: str, **fields: Any) -> dict[str, Any]:
    body = {"name": name, "first_message": f"Hello from {name}.", "tags": ["sea"], **fields}
    response = await client.post("/api/v1/characters", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _chat(client: httpx.AsyncClient, character_id: str) -> dict[str, Any]:
    response = await client.post("/api/v1/chats", json={"character_id": character_id})
    assert response.status_code == 201, response.text
    return dict(response.json())


def _id(stored: Any) -> str:
    # insert_message returns the stored record (an id string in older revisions).
    return stored if isinstance(stored, str) else str(stored.id)


async def _turn_with_two_replies(api: Api, chat_id: str) -> None:
    """A user message and two swipes of its reply: the first failed, the second chosen."""
    async with api.container.database.write() as tx:
        chat = await chat_repo.lock_chat(tx, chat_id)
        assert chat is not None
        first = await chat_repo.reserve_positions(tx, chat, 2)
        question = _id(
            await chat_repo.insert_message(
                tx,
                chat_id=chat_id,
                role="user",
                position=first,
                content="Where is the lighthouse?",
                status="complete",
                author_id=chat.owner_id,
                client_id="c1",
            )
        )
        failed = _id(
            await chat_repo.insert_message(
                tx,
                chat_id=chat_id,
                role="assistant",
                position=first + 1,
                content="It is by the",
                status="failed",
                parent_id=question,
                selected=False,
            )
        )
        await chat_repo.update_message(tx, failed, error_code="backend_unavailable")
        await chat_repo.insert_message(
            tx,
            chat_id=chat_id,
            role="assistant",
            position=first + 1,
            content="On the northern cliff.",
            status="complete",
            parent_id=question,
            swipe_index=1,
        )
        await memory_repo.insert_memory(
            tx, chat_id=chat_id, kind="summary", content="They talk about a lighthouse.",
            through_position=first,
        )  # fmt: skip


async def _export(client: httpx.AsyncClient) -> tuple[httpx.Response, dict[str, Any]]:
    response = await client.get("/api/v1/me/export")
    assert response.status_code == 200, response.text
    return response, dict(json.loads(response.text))


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of one or two rows, so every page boundary of the writer is crossed."""
    monkeypatch.setattr(export_service, "_CHARACTER_PAGE", 1)
    monkeypatch.setattr(export_service, "_CHAT_PAGE", 1)
    monkeypatch.setattr(export_service, "_MESSAGE_PAGE", 2)


@pytest.mark.usefixtures("small_pages")
async def test_the_export_holds_everything_alice_owns_and_nothing_else(api: Api) -> None:
    alice = await api.user("alice", display_name="Alice A.")
    token = (await alice.post("/api/v1/tokens", json={"name": "script"})).json()
    persona = (await alice.post("/api/v1/personas", json={"name": "Morgan"})).json()
    ilsa = await _character(alice, "Ilsa", avatar=AVATAR, visibility="private")
    await _character(alice, "Orrin", tagline="A keeper")
    gone = await _character(alice, "Gone")
    assert (await alice.delete(f"/api/v1/characters/{gone['id']}")).status_code == 204
    chat = await _chat(alice, ilsa["id"])
    await _turn_with_two_replies(api, chat["id"])
    pinned = await alice.post(f"/api/v1/chats/{chat['id']}/memories", json={"content": "Cats."})
    assert pinned.status_code == 201, pinned.text
    empty_chat = await _chat(alice, ilsa["id"])
    deleted_chat = await _chat(alice, ilsa["id"])
    assert (await alice.delete(f"/api/v1/chats/{deleted_chat['id']}")).status_code == 204
    bob = await api.user("bob")
    bobs = await _character(bob, "Bob's")
    await _chat(bob, bobs["id"])

    response, document = await _export(alice)
    assert response.headers["content-type"].startswith("application/json")
    disposition = response.headers["content-disposition"]
    assert re.fullmatch(r'attachment; filename="personae-alice-\d{4}-\d\d-\d\d\.json"', disposition)
    assert document["format"] == "personae-export" and document["version"] == 1

    account = document["account"]
    assert account["username"] == "alice" and account["display_name"] == "Alice A."
    assert [t["name"] for t in account["api_tokens"]] == ["script"]
    assert len(account["sessions"]) == 1
    for secret in ("password_hash", "token_hash", "csrf_token", "$argon2", token["token"]):
        assert secret not in response.text, secret
    assert alice.headers["X-CSRF-Token"] not in response.text
    assert [p["id"] for p in document["personas"]] == [persona["id"]]

    characters = {c["card"]["data"]["name"]: c for c in document["characters"]}
    assert set(characters) == {"Ilsa", "Orrin"}  # deleted ones and others' are left out
    assert characters["Ilsa"]["visibility"] == "private"
    assert characters["Ilsa"]["avatar"] == AVATAR
    assert characters["Ilsa"]["card"]["spec"] == "chara_card_v3"
    assert characters["Ilsa"]["card"]["data"]["first_mes"] == "Hello from Ilsa."
    assert characters["Orrin"]["tagline"] == "A keeper"

    chats = {entry["chat"]["id"]: entry for entry in document["chats"]}
    assert set(chats) == {chat["id"], empty_chat["id"]}
    entry = chats[chat["id"]]
    assert entry["chat"]["character_name"] == "Ilsa"
    assert [m["content"] for m in entry["pinned_memories"]] == ["Cats."]
    assert [m["content"] for m in entry["summaries"]] == ["They talk about a lighthouse."]
    messages = entry["messages"]
    assert [(m["position"], m["swipe_index"]) for m in messages] == [(0, 0), (1, 0), (2, 0), (2, 1)]
    assert messages[0]["content"] == "Hello from Ilsa."
    failed, chosen = messages[2], messages[3]
    assert (failed["status"], failed["error_code"], failed["selected"]) == (
        "failed",
        "backend_unavailable",
        False,
    )
    assert failed["content"] == "It is by the"  # a failed reply keeps its partial text
    assert (chosen["status"], chosen["selected"]) == ("complete", True)
    assert messages[1]["client_id"] == "c1"
    assert [m["position"] for m in chats[empty_chat["id"]]["messages"]] == [0]


async def test_an_account_with_nothing_exports_empty_lists(api: Api) -> None:
    carol = await api.user("carol")
    _, document = await _export(carol)
    assert document["personas"] == [] and document["characters"] == [] and document["chats"] == []
    # An API token reads the same export (no CSRF needed for a GET).
    token = (await carol.post("/api/v1/tokens", json={"name": "t"})).json()["token"]
    _, by_token = await _export(api.bearer(token))
    assert by_token["account"]["username"] == "carol"


async def test_the_export_needs_a_login(api: Api) -> None:
    assert_problem(await api.client().get("/api/v1/me/export"), 401, "not_authenticated")
    assert_problem(await api.bearer("pk_nope").get("/api/v1/me/export"), 401, "not_authenticated")
    alice = await api.user("alice")
    assert_problem(await alice.post("/api/v1/me/export"), 405, "method_not_allowed")
