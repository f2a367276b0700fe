"""Chats and sending, with replies from the real embedded model."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from conftest import Api, assert_problem, wait_for_reply
from personae.app import create_app
from personae.settings import Settings

CHARACTER = {
    "name": "Bramble",
    "tagline": "a fox",
    "description": "{{char}} is a talking fox who keeps a tea shop and greets {{user}} warmly.",
    "first_message": "Welcome, {{USER}}! I am {{char}}.",
    "alternate_greetings": ["Hello again, <USER>."],
}


@pytest.fixture
async def model_api(model_settings: Callable[..., Settings]) -> Any:
    app = create_app(model_settings())
    async with app.router.lifespan_context(app):
        helper = Api(app)
        yield helper
        await helper.aclose()


async def _chat(client: httpx.AsyncClient) -> str:
    character = await client.post("/api/v1/characters", json=CHARACTER)
    assert character.status_code == 201, character.text
    chat = await client.post("/api/v1/chats", json={"character_id": character.json()["id"]})
    assert chat.status_code == 201, chat.text
    return str(chat.json()["id"])


async def test_a_chat_opens_with_the_greeting_and_alternates_as_swipes(api: Api) -> None:
    alice = await api.user("alice", display_name="Alice")
    chat_id = await _chat(alice)
    page = (await alice.get(f"/api/v1/chats/{chat_id}/messages")).json()
    [greeting] = page["items"]
    assert greeting["content"] == "Welcome, Alice! I am Bramble."
    assert greeting["swipe_count"] == 2
    assert page["has_more"] is False


async def test_a_sent_message_is_answered_by_the_model(model_api: Api) -> None:
    alice = await model_api.user("alice")
    chat_id = await _chat(alice)
    sent = await alice.put(f"/api/v1/chats/{chat_id}/messages/c1", json={"content": "Hi there!"})
    assert sent.status_code == 202, sent.text
    body = sent.json()
    assert body["message"]["content"] == "Hi there!"
    assert body["message"]["client_id"] == "c1"
    assert body["reply"]["status"] in {"queued", "generating"}
    reply = await wait_for_reply(alice, chat_id, body["reply"]["id"])
    assert reply["status"] == "complete", reply
    assert reply["content"].strip()
    assert reply["parent_id"] == body["message"]["id"]


async def test_the_same_client_id_returns_the_same_pair(model_api: Api) -> None:
    alice = await model_api.user("alice")
    chat_id = await _chat(alice)
    url = f"/api/v1/chats/{chat_id}/messages/same-id"
    first = await alice.put(url, json={"content": "Hello"})
    again = await alice.put(url, json={"content": "Hello"})
    assert again.status_code == 202
    assert again.json()["message"]["id"] == first.json()["message"]["id"]
    assert again.json()["reply"]["id"] == first.json()["reply"]["id"]
    await wait_for_reply(alice, chat_id, first.json()["reply"]["id"])
    after_done = await alice.put(url, json={"content": "Hello"})
    assert after_done.json()["reply"]["id"] == first.json()["reply"]["id"]
    assert after_done.json()["reply"]["status"] == "complete"


async def test_concurrent_duplicates_store_one_message(model_api: Api) -> None:
    alice = await model_api.user("alice")
    chat_id = await _chat(alice)
    url = f"/api/v1/chats/{chat_id}/messages/burst"
    answers = await asyncio.gather(*(alice.put(url, json={"content": "Once"}) for _ in range(8)))
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["message"]["id"] for a in answers}) == 1
    assert len({a.json()["reply"]["id"] for a in answers}) == 1
    page = (await alice.get(f"/api/v1/chats/{chat_id}/messages")).json()["items"]
    assert [m["content"] for m in page if m["role"] == "user"] == ["Once"]


async def test_a_client_id_reused_for_other_content_is_refused_with_the_original(
    model_api: Api,
) -> None:
    alice = await model_api.user("alice")
    chat_id = await _chat(alice)
    url = f"/api/v1/chats/{chat_id}/messages/k"
    await alice.put(url, json={"content": "first"})
    clash = await alice.put(url, json={"content": "second"})
    body = assert_problem(clash, 409, "client_id_reused")
    assert body["original"]["content"] == "first"


@pytest.mark.parametrize("content", ["", "   ", "x" * 4001])
async def test_empty_or_oversized_messages_are_refused_and_nothing_is_stored(
    api: Api, content: str
) -> None:
    alice = await api.user("alice")
    chat_id = await _chat(alice)
    answer = await alice.put(f"/api/v1/chats/{chat_id}/messages/m1", json={"content": content})
    assert_problem(answer, 422, "validation_error")
    page = (await alice.get(f"/api/v1/chats/{chat_id}/messages")).json()["items"]
    assert [m["role"] for m in page] == ["assistant"]


async def test_another_users_chat_is_not_found(api: Api) -> None:
    alice = await api.user("alice")
    mallory = await api.user("mallory")
    chat_id = await _chat(alice)
    for answer in (
        await mallory.get(f"/api/v1/chats/{chat_id}"),
        await mallory.get(f"/api/v1/chats/{chat_id}/messages"),
        await mallory.put(f"/api/v1/chats/{chat_id}/messages/x", json={"content": "hi"}),
        await mallory.get(f"/api/v1/chats/{chat_id}/events"),
        await mallory.delete(f"/api/v1/chats/{chat_id}"),
    ):
        assert_problem(answer, 404, "not_found")
    page = (await alice.get(f"/api/v1/chats/{chat_id}/messages")).json()["items"]
    assert len(page) == 1


async def test_a_reply_no_backend_ever_answers_ends_failed_and_retryable_at_its_deadline(
    make_settings: Callable[..., Settings],
) -> None:
    # The backend refuses every connection: it is down, so the reply waits for it
    # (no attempt is spent) until its deadline.
    settings = make_settings(job_max_attempts=2, job_retry_base_s=0.05, reply_deadline_s=2)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        api = Api(app)
        alice = await api.user("alice")
        chat_id = await _chat(alice)
        sent = await alice.put(f"/api/v1/chats/{chat_id}/messages/m", json={"content": "hello?"})
        reply = await wait_for_reply(alice, chat_id, sent.json()["reply"]["id"], timeout_s=20)
        await api.aclose()
    assert reply["status"] == "failed"
    assert reply["retryable"] is True
    assert reply["error_code"] == "backend_unavailable"
