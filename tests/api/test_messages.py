"""Swipes, edits, deletion and ratings with the real embedded model; stop with a
SIMULATED one that writes slowly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from conftest import Api, assert_problem, fleet, wait_for_reply
from personae.app import create_app
from personae.settings import Settings


@pytest.fixture
async def model_api(model_settings: Callable[..., Settings]) -> Any:
    app = create_app(model_settings(max_reply_tokens=24))
    async with app.router.lifespan_context(app):
        helper = Api(app)
        yield helper
        await helper.aclose()


async def _answered(client: httpx.AsyncClient, text: str = "Hello!") -> tuple[str, dict[str, Any]]:
    character = await client.post(
        "/api/v1/characters", json={"name": "Ren", "first_message": "Hi."}
    )
    chat = await client.post("/api/v1/chats", json={"character_id": character.json()["id"]})
    chat_id = chat.json()["id"]
    sent = await client.put(f"/api/v1/chats/{chat_id}/messages/first", json={"content": text})
    reply = await wait_for_reply(client, chat_id, sent.json()["reply"]["id"])
    return chat_id, reply


async def test_swipe_writes_another_reply_and_either_can_be_selected(model_api: Api) -> None:
    alice = await model_api.user("alice")
    chat_id, first = await _answered(alice)
    swiped = await alice.post(f"/api/v1/messages/{first['id']}/swipes")
    assert swiped.status_code == 202, swiped.text
    second = await wait_for_reply(alice, chat_id, swiped.json()["id"])
    assert second["status"] == "complete"
    assert (second["position"], second["swipe_index"], second["swipe_count"]) == (
        first["position"],
        1,
        2,
    )
    back = await alice.patch(f"/api/v1/messages/{second['id']}", json={"swipe": 0})
    assert back.status_code == 200
    assert back.json()["id"] == first["id"]
    history = (await alice.get(f"/api/v1/chats/{chat_id}/messages")).json()["items"]
    assert history[-1]["id"] == first["id"]
    missing = await alice.patch(f"/api/v1/messages/{second['id']}", json={"swipe": 7})
    assert_problem(missing, 404, "not_found")


async def test_only_the_latest_reply_can_be_swiped(model_api: Api) -> None:
    alice = await model_api.user("alice")
    chat_id, _ = await _answered(alice)
    greeting = (await alice.get(f"/api/v1/chats/{chat_id}/messages")).json()["items"][0]
    assert_problem(
        await alice.post(f"/api/v1/messages/{greeting['id']}/swipes"), 409, "invalid_state"
    )


async def test_edit_delete_and_rate(model_api: Api) -> None:
    alice = await model_api.user("alice")
    chat_id, reply = await _answered(alice)
    edited = await alice.patch(f"/api/v1/messages/{reply['id']}", json={"content": "Edited."})
    assert edited.json()["content"] == "Edited."
    rated = await alice.put(f"/api/v1/messages/{reply['id']}/rating", json={"stars": 4})
    assert rated.json()["rating"] == 4
    assert_problem(
        await alice.put(f"/api/v1/messages/{reply['id']}/rating", json={"stars": 5}),
        422,
        "validation_error",
    )
    user_message = reply["parent_id"]
    assert_problem(
        await alice.put(f"/api/v1/messages/{user_message}/rating", json={"stars": 2}),
        409,
        "invalid_state",
    )
    assert_problem(
        await alice.patch(f"/api/v1/messages/{reply['id']}", json={"content": "a", "swipe": 0}),
        422,
        "validation_error",
    )
    deleted = await alice.delete(f"/api/v1/messages/{reply['id']}")
    assert deleted.status_code == 204
    history = (await alice.get(f"/api/v1/chats/{chat_id}/messages")).json()["items"]
    assert reply["id"] not in [m["id"] for m in history]
    assert_problem(
        await alice.get(f"/api/v1/messages/{reply['id']}/swipes"), 405, "method_not_allowed"
    )


async def test_another_user_cannot_touch_my_messages(model_api: Api) -> None:
    alice = await model_api.user("alice")
    mallory = await model_api.user("mallory")
    _, reply = await _answered(alice)
    for answer in (
        await mallory.post(f"/api/v1/messages/{reply['id']}/swipes"),
        await mallory.patch(f"/api/v1/messages/{reply['id']}", json={"content": "mine"}),
        await mallory.delete(f"/api/v1/messages/{reply['id']}"),
        await mallory.put(f"/api/v1/messages/{reply['id']}/rating", json={"stars": 1}),
        await mallory.post(f"/api/v1/messages/{reply['id']}/stop"),
    ):
        assert_problem(answer, 404, "not_found")


async def test_stop_keeps_what_was_written(make_settings: Callable[..., Settings]) -> None:
    # A SIMULATED backend writing 20 tokens a second: the reply is surely still being
    # written when Stop comes. (The real model sometimes ended its story before a
    # loaded machine's poll saw it writing.)
    slow = {"sim": {"slots": 2, "tokens_per_second": 20}}
    async with fleet(make_settings, slow, max_reply_tokens=400) as (api, _urls):
        alice = await api.user("alice")
        character = await alice.post("/api/v1/characters", json={"name": "Odile"})
        chat = (
            await alice.post("/api/v1/chats", json={"character_id": character.json()["id"]})
        ).json()
        sent = await alice.put(
            f"/api/v1/chats/{chat['id']}/messages/long",
            json={"content": "Tell me a very long story about the sea, with many chapters."},
        )
        reply_id = sent.json()["reply"]["id"]
        while not (await wait_for_reply(alice, chat["id"], reply_id, statuses={"generating"}))[
            "content"
        ]:
            pass
        stopped = await alice.post(f"/api/v1/messages/{reply_id}/stop")
        assert stopped.status_code == 200
        assert stopped.json()["status"] == "stopped"
        kept = await wait_for_reply(alice, chat["id"], reply_id)
        assert kept["status"] == "stopped"
        assert kept["content"]
        again = await alice.post(f"/api/v1/messages/{reply_id}/stop")
        assert again.json()["status"] == "stopped"


async def test_stopping_a_queued_reply(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(job_retry_base_s=30)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        api = Api(app)
        alice = await api.user("alice")
        character = await alice.post("/api/v1/characters", json={"name": "Odile"})
        chat = (
            await alice.post("/api/v1/chats", json={"character_id": character.json()["id"]})
        ).json()
        sent = await alice.put(f"/api/v1/chats/{chat['id']}/messages/q", json={"content": "hi"})
        reply_id = sent.json()["reply"]["id"]
        # The backend is unreachable: the job waits 30 s before its retry, queued.
        await wait_for_reply(alice, chat["id"], reply_id, statuses={"queued"})
        stopped = await alice.post(f"/api/v1/messages/{reply_id}/stop")
        assert stopped.json()["status"] == "stopped"
        await api.aclose()
