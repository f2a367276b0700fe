"""The reply to a send goes to a backend before the send is stored, from what is kept
of the chat (a guess); the stream is used only if the stored message's own material
builds the very same prompt, and let go of otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from queue_helpers import start_chat, watch_aheads

from conftest import Api, fleet, wait_for_reply
from personae.jobs import scheduler as scheduler_module
from personae.settings import Settings
from personae.storage.repos import accounts as account_repo

ONE_SLOT = {"a": {"slots": 1, "tokens_per_second": 40}}


async def _say(client: httpx.AsyncClient, chat_id: str, client_id: str, text: str) -> str:
    sent = await client.put(f"/api/v1/chats/{chat_id}/messages/{client_id}", json={"content": text})
    assert sent.status_code == 202, sent.text
    reply = sent.json()["reply"]
    assert reply["queue"] is None  # started at send
    done = await wait_for_reply(client, chat_id, reply["id"], timeout_s=60)
    assert done["status"] == "complete", done
    return str(reply["id"])


def _taken(api: Api, monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    generation = api.container.scheduler._generation
    assert generation is not None
    return watch_aheads(monkeypatch, generation)


def _holds(api: Api, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each send was held a slot (the sends for which a guess is tried)."""
    scheduler = api.container.scheduler
    hold = scheduler.hold_slot
    held: list[bool] = []

    async def watched(*args: Any) -> Any:
        slot = await hold(*args)
        held.append(slot is not None)
        return slot

    monkeypatch.setattr(scheduler, "hold_slot", watched)
    return held


async def _stats(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url) as backend:
        stats: dict[str, Any] = (await backend.get("/simulation/stats")).json()
        return stats


async def _nothing_left_held(api: Api, url: str) -> None:
    """No backend slot stays counted and the simulation answers nothing still."""
    for _ in range(100):
        in_flight = [backend.in_flight for backend in api.container.router.backends]
        if (await _stats(url))["active"] == 0 and not any(in_flight):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"still held: {in_flight}, {await _stats(url)}")


async def test_the_next_turn_streams_from_what_the_last_reply_left(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fleet(make_settings, ONE_SLOT, max_reply_tokens=6) as (api, urls):
        taken = _taken(api, monkeypatch)
        client = await api.user("solo")
        chat_id = await start_chat(client)
        first = await _say(client, chat_id, "t1", "Tell me about tea.")
        second = await _say(client, chat_id, "t2", "And about coffee?")
        assert taken[second] is True
        first_text = (await client.get(f"/api/v1/chats/{chat_id}/messages")).json()["items"]
        said = {m["id"]: m["content"] for m in first_text}
        stats = await _stats(urls["a"])
        # Each turn was asked once: the stream begun at send was the one written.
        assert stats["last_user_turns"] == ["Tell me about tea.", "And about coffee?"]
        # And it was asked the whole conversation, the first reply included.
        assert said[first] in stats["answered_prompts"][-1]
        await _nothing_left_held(api, urls["a"])


async def test_a_chat_opened_has_its_first_send_streamed_at_once(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fleet(make_settings, ONE_SLOT, max_reply_tokens=6) as (api, urls):
        taken = _taken(api, monkeypatch)
        client = await api.user("solo")
        chat_id = await start_chat(client)
        async with api.container.database.read() as tx:
            user = await account_repo.get_user_by_username(tx, "solo")
        assert user is not None
        # What the chat's event stream does as it opens (here without reading it).
        await api.container.streams.open(
            user, chat_id, None, heartbeat_s=30, stop=api.container.stopping
        )
        reply = await _say(client, chat_id, "f1", "Hello there.")
        assert taken[reply] is True
        assert (await _stats(urls["a"]))["last_user_turns"] == ["Hello there."]


async def test_the_guessed_request_is_on_the_wire_before_the_send_is_stored(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The send's own work shares the event loop: begun first, it would hold up the
    writing of the request the backend's first token waits for."""
    monkeypatch.setattr(scheduler_module, "_GUESS_FIRST_S", 5.0)  # a slow machine's wait
    async with fleet(make_settings, ONE_SLOT, max_reply_tokens=6) as (api, _urls):
        taken = _taken(api, monkeypatch)
        chats, scheduler = api.container.chats, api.container.scheduler
        store = chats._store_and_queue
        written: list[bool] = []

        async def storing(*args: Any) -> Any:
            slot = args[-1]
            ahead = scheduler._held[slot].ahead if slot is not None else None
            begun = ahead.result() if ahead is not None and ahead.done() else None
            written.append(begun is not None and begun.stats.sent.is_set())
            return await store(*args)

        monkeypatch.setattr(chats, "_store_and_queue", storing)
        client = await api.user("solo")
        chat_id = await start_chat(client)
        await _say(client, chat_id, "t1", "Tell me about tea.")
        second = await _say(client, chat_id, "t2", "And about coffee?")
        assert taken[second] is True
        assert written[-1] is True


async def test_no_guess_is_sent_once_the_chat_has_changed_in_its_prompt(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A memory pinned (or a message edited or deleted) after the last reply marks the
    chat: what was kept of it is not sent to a backend again."""
    async with fleet(make_settings, ONE_SLOT, max_reply_tokens=6) as (api, urls):
        taken = _taken(api, monkeypatch)
        client = await api.user("solo")
        chat_id = await start_chat(client)
        await _say(client, chat_id, "g1", "Hello.")
        pinned = await client.post(
            f"/api/v1/chats/{chat_id}/memories", json={"content": "Solo lives in Oslo."}
        )
        assert pinned.status_code == 201, pinned.text
        reply = await _say(client, chat_id, "g2", "Where do I live?")
        assert taken[reply] is False
        stats = await _stats(urls["a"])
        assert stats["last_user_turns"].count("Where do I live?") == 1
        assert "Solo lives in Oslo." in stats["answered_prompts"][-1]
        prompt = (await client.get(f"/api/v1/messages/{reply}/prompt")).json()
        assert [memory_id for memory_id, _ in prompt["included"]["pinned"]] == [pinned.json()["id"]]
        await _nothing_left_held(api, urls["a"])


async def test_a_guess_that_builds_another_prompt_is_let_go(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The character was edited after the last reply (that does not mark its chats): the
    stream begun from what was kept is let go of, and the reply is asked anew."""
    async with fleet(make_settings, ONE_SLOT, max_reply_tokens=6) as (api, urls):
        taken = _taken(api, monkeypatch)
        client = await api.user("solo")
        chat_id = await start_chat(client)
        await _say(client, chat_id, "c1", "Hello.")
        character_id = (await client.get(f"/api/v1/chats/{chat_id}")).json()["character_id"]
        edited = await client.patch(
            f"/api/v1/characters/{character_id}", json={"description": "A badger of the hills."}
        )
        assert edited.status_code == 200, edited.text
        reply = await _say(client, chat_id, "c2", "Who are you?")
        assert taken[reply] is True  # begun from the guess, then let go of
        stats = await _stats(urls["a"])
        answered = [p for p in stats["answered_prompts"] if "Who are you?" in p]
        assert len(answered) == 1 and "A badger of the hills." in answered[0]
        await _nothing_left_held(api, urls["a"])


async def test_no_guess_is_sent_while_the_author_has_a_reply_pending(
    make_settings: Callable[..., Settings],
) -> None:
    two_slots = {"a": {"slots": 2, "tokens_per_second": 10}}
    async with fleet(make_settings, two_slots, max_reply_tokens=10, queue_max_per_user=3) as (
        api,
        urls,
    ):
        client = await api.user("busy")
        chats = [await start_chat(client), await start_chat(client)]
        for number, chat_id in enumerate(chats):
            await _say(client, chat_id, f"k{number}", "Hello.")  # each chat's material kept
        first = await client.put(f"/api/v1/chats/{chats[0]}/messages/b1", json={"content": "One."})
        second = await client.put(f"/api/v1/chats/{chats[1]}/messages/b2", json={"content": "Two."})
        assert second.json()["reply"]["queue"] is not None  # it waits for the first
        for chat_id, sent in zip(chats, (first, second), strict=True):
            await wait_for_reply(client, chat_id, sent.json()["reply"]["id"], timeout_s=60)
        assert (await _stats(urls["a"]))["last_user_turns"].count("Two.") == 1
        await _nothing_left_held(api, urls["a"])


async def test_no_stream_is_begun_for_a_chat_of_another_user(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fleet(make_settings, ONE_SLOT, max_reply_tokens=6) as (api, urls):
        held = _holds(api, monkeypatch)
        owner, stranger = await api.user("owner"), await api.user("stranger")
        chat_id = await start_chat(owner)
        await _say(owner, chat_id, "o1", "Hello.")  # what the chat is, kept
        asked = (await _stats(urls["a"]))["requests"]
        refused = await stranger.put(
            f"/api/v1/chats/{chat_id}/messages/s1", json={"content": "Let me in."}
        )
        assert refused.status_code == 404, refused.text
        assert held[-1] is True  # a slot was held for it: a guess could have been made
        assert (await _stats(urls["a"]))["requests"] == asked
        await _nothing_left_held(api, urls["a"])


async def test_a_repeated_send_lets_its_guessed_stream_go(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fleet(make_settings, ONE_SLOT, max_reply_tokens=6) as (api, urls):
        held = _holds(api, monkeypatch)
        client = await api.user("again")
        chat_id = await start_chat(client)
        await _say(client, chat_id, "a1", "Hello.")
        first = await _say(client, chat_id, "a2", "Again?")
        again = await client.put(f"/api/v1/chats/{chat_id}/messages/a2", json={"content": "Again?"})
        assert again.status_code == 202 and again.json()["reply"]["id"] == first
        assert held[-1] is True  # a slot was held, and a stream begun, for the repeat
        await _nothing_left_held(api, urls["a"])
        # The slot is free for the next send, which streams and completes.
        await _say(client, chat_id, "a3", "Once more.")
        stats = await _stats(urls["a"])
        assert stats["answered_user_turns"][-1] == "Once more."
        assert stats["answered_user_turns"].count("Again?") == 1
