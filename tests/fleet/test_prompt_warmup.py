"""Prompt warm-ups on opening a chat or a character page, over a SIMULATED backend
that records what it is asked: sent at the lowest priority in small chunks, once per
prefix, never in a reply's way, and not cut short by a status probe."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import httpx

from conftest import Api, fleet, wait_for_reply
from personae.services.warmup import growing_prefixes
from personae.settings import Settings
from personae.storage.repos import jobs as job_repo

DEFINITION = "Bramble keeps the lighthouse on the north cape and talks to the gulls. " * 20


async def _stats(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url) as client:
        stats: dict[str, Any] = (await client.get("/simulation/stats")).json()
        return stats


async def _arm(url: str, **fault: Any) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        (await client.post("/simulation/faults", json=fault)).raise_for_status()


async def _until(condition: Callable[[], Any], timeout_s: float = 20.0) -> None:
    """Wait until `condition()` (awaited when it is a coroutine) is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        assert loop.time() < deadline, "the condition never came true"
        await asyncio.sleep(0.02)


async def _chat(client: httpx.AsyncClient, name: str = "Bramble") -> tuple[str, str]:
    character = await client.post(
        "/api/v1/characters",
        json={"name": name, "description": DEFINITION.replace("Bramble", name)},
    )
    assert character.status_code == 201, character.text
    chat = await client.post("/api/v1/chats", json={"character_id": character.json()["id"]})
    assert chat.status_code == 201, chat.text
    return str(character.json()["id"]), str(chat.json()["id"])


async def _send(client: httpx.AsyncClient, chat_id: str, text: str) -> str:
    sent = await client.put(f"/api/v1/chats/{chat_id}/messages/{text}", json={"content": text})
    assert sent.status_code == 202, sent.text
    return str(sent.json()["reply"]["id"])


async def _open(api: Api, client: httpx.AsyncClient, path: str) -> None:
    """Open a page's resource and wait for the warm-up it began to end."""
    assert (await client.get(path)).status_code == 200
    await api.container.warmer.settled()


async def test_opening_a_chat_warms_its_prefix_once_and_the_first_reply_finds_it_cached(
    make_settings: Callable[..., Settings],
) -> None:
    async with fleet(make_settings, {"a": {"slots": 1}}) as (api, urls):
        alice = await api.user("alice")
        _character_id, chat_id = await _chat(alice)
        before = await _stats(urls["a"])
        await _open(api, alice, f"/api/v1/chats/{chat_id}")
        after = await _stats(urls["a"])
        # Read in chunks (~1,400 characters at ~128 tokens each), one request per chunk.
        chunks = api.container.warmer.counts["chunks"]
        assert chunks > 1
        assert after["short_requests"] - before["short_requests"] == chunks
        assert api.container.warmer.counts["sent"] == 1
        # Each chunk found the ones before it cached: the definition was read about
        # once, not once per chunk.
        definition_words = len(DEFINITION.split())
        asked = after["prompt_tokens"] - before["prompt_tokens"]
        fresh = asked - (after["cached_tokens"] - before["cached_tokens"])
        assert asked > 2 * definition_words
        assert fresh < definition_words + 30 * chunks
        # Opened again within the window: nothing more is sent.
        await _open(api, alice, f"/api/v1/chats/{chat_id}")
        assert (await _stats(urls["a"]))["short_requests"] == after["short_requests"]
        assert api.container.warmer.counts["deduplicated"] == 1
        # The first reply reads the definition from the cache.
        reply = await wait_for_reply(alice, chat_id, await _send(alice, chat_id, "hello"))
        assert reply["status"] == "complete"
        final = await _stats(urls["a"])
        assert final["cached_tokens"] - after["cached_tokens"] >= definition_words


async def test_opening_a_character_page_warms_the_prefix_of_a_new_chat(
    make_settings: Callable[..., Settings],
) -> None:
    async with fleet(make_settings, {"a": {"slots": 1}}) as (api, urls):
        alice = await api.user("alice")
        character_id, _chat_id = await _chat(alice)
        await _open(api, alice, f"/api/v1/characters/{character_id}")
        assert api.container.warmer.counts["sent"] == 1
        requests = (await _stats(urls["a"]))["short_requests"]
        assert requests == api.container.warmer.counts["chunks"]
        # A visitor who is not signed in has no chat to warm for.
        await _open(api, api.client(), f"/api/v1/characters/{character_id}")
        assert (await _stats(urls["a"]))["short_requests"] == requests


async def test_a_reply_takes_the_slot_of_a_warmup_at_once(
    make_settings: Callable[..., Settings],
) -> None:
    """The warm-up hangs on the backend's only slot; a reply sent meanwhile cancels it
    and is written (it would wait an hour for the hanging warm-up otherwise)."""
    async with fleet(make_settings, {"a": {"slots": 1}}, first_token_timeout_s=20) as (
        api,
        urls,
    ):
        alice = await api.user("alice")
        _character_id, chat_id = await _chat(alice)
        await _arm(urls["a"], mode="hang", count=1)
        assert (await alice.get(f"/api/v1/chats/{chat_id}")).status_code == 200
        await _until(lambda: _active(urls["a"]))
        reply = await wait_for_reply(
            alice, chat_id, await _send(alice, chat_id, "hello"), timeout_s=15
        )
        assert reply["status"] == "complete"
        assert reply["backend"] == "a"
        await api.container.warmer.settled()
        assert api.container.warmer.counts["cancelled"] == 1
        assert api.container.warmer.counts["sent"] == 0
        assert api.container.warmer.counts["chunks"] == 0
        # What it had read stays cached; opening the chat again warms it anew.
        await _open(api, alice, f"/api/v1/chats/{chat_id}")
        assert api.container.warmer.counts["sent"] == 1


async def test_a_status_probe_waits_for_the_chunk_being_read_and_the_warmup_goes_on(
    make_settings: Callable[..., Settings],
) -> None:
    """One slot, chunks that take a while to read: a probe round during the warm-up
    answers (its few tokens wait for one chunk) and does not cancel the warm-up."""
    backend = {"slots": 1, "prompt_ms_per_token": 5.0}
    async with fleet(
        make_settings, {"a": backend}, prompt_warmup_chunk_tokens=32, probe_interval_s=0
    ) as (api, urls):
        alice = await api.user("alice")
        _character_id, chat_id = await _chat(alice)
        warmer = api.container.warmer
        assert (await alice.get(f"/api/v1/chats/{chat_id}")).status_code == 200
        await _until(lambda: warmer.counts["chunks"] >= 1)
        results = {r.component: r for r in await api.container.probes.run_round()}
        assert results["backend:a"].ok, results["backend:a"]
        # The probe wrote its tokens while the warm-up was not over.
        assert not warmer.counts["sent"]
        await warmer.settled()
        assert warmer.counts["sent"] == 1
        assert warmer.counts["cancelled"] == 0
        assert (await _stats(urls["a"]))["max_active"] == 1


async def _active(url: str) -> bool:
    return bool((await _stats(url))["active"])


async def test_no_warmup_while_the_backend_writes_a_reply(
    make_settings: Callable[..., Settings],
) -> None:
    async with fleet(make_settings, {"a": {"slots": 2}}, first_token_timeout_s=20) as (
        api,
        urls,
    ):
        alice = await api.user("alice")
        _character_id, busy_chat = await _chat(alice)
        _other_character, chat_id = await _chat(alice)
        await _arm(urls["a"], mode="hang", count=1)
        reply_id = await _send(alice, busy_chat, "hello")
        await _until(lambda: _active(urls["a"]))
        # A slot is free, but the backend is writing a reply: a warm-up would slow it.
        await _open(api, alice, f"/api/v1/chats/{chat_id}")
        assert (await _stats(urls["a"]))["short_requests"] == 0
        assert api.container.warmer.counts["busy"] == 1
        assert (await alice.post(f"/api/v1/messages/{reply_id}/stop")).status_code in (200, 202)
        await wait_for_reply(alice, busy_chat, reply_id)


async def test_no_warmup_while_a_reply_waits_in_line(
    make_settings: Callable[..., Settings],
) -> None:
    async with fleet(make_settings, {"a": {"slots": 1}}) as (api, urls):
        alice = await api.user("alice")
        _character_id, chat_id = await _chat(alice)
        # A reply waiting for its retry: the backend is idle, but it goes first.
        async with api.container.database.write() as tx:
            job = await job_repo.insert_job(
                tx, kind="reply", user_id=None, chat_id=None, message_id=None
            )
            await job_repo.requeue(tx, job.id, delay_s=3600, error="waiting")
        await _open(api, alice, f"/api/v1/chats/{chat_id}")
        assert (await _stats(urls["a"]))["short_requests"] == 0
        assert api.container.warmer.counts["busy"] == 1


async def test_warmups_can_be_turned_off(make_settings: Callable[..., Settings]) -> None:
    async with fleet(make_settings, {"a": {"slots": 1}}, prompt_warmup=False) as (api, urls):
        alice = await api.user("alice")
        character_id, chat_id = await _chat(alice)
        await _open(api, alice, f"/api/v1/chats/{chat_id}")
        await _open(api, alice, f"/api/v1/characters/{character_id}")
        assert (await _stats(urls["a"]))["short_requests"] == 0
        assert not api.container.warmer.counts


def test_growing_prefixes_nest_cut_before_spaces_and_end_with_the_whole_text() -> None:
    text = "The keeper lights the lamp at dusk and counts the gulls on the rail. " * 40
    prefixes = list(growing_prefixes(text, 32))
    assert prefixes[-1] == text
    assert all(b.startswith(a) for a, b in itertools.pairwise(prefixes))
    # About 32 tokens (~128 bytes) more each time, cut before a space.
    steps = [len(b) - len(a) for a, b in itertools.pairwise(["", *prefixes])]
    assert all(100 <= step <= 128 for step in steps[:-1]), steps
    assert all(text[len(prefix)] == " " for prefix in prefixes[:-1])
    # Text with no space is cut anyway; a short text is one chunk.
    assert [len(p) for p in growing_prefixes("x" * 300, 32)] == [128, 256, 300]
    assert list(growing_prefixes("Hello there.", 32)) == ["Hello there."]
    # Three bytes a character: a third as many characters per chunk.
    assert len(next(growing_prefixes("灯台守" * 200, 32))) == 42


async def test_a_chunk_that_fails_once_is_sent_again_and_one_that_fails_twice_says_why(
    make_settings: Callable[..., Settings],
) -> None:
    async with fleet(make_settings, {"a": {"slots": 1}}) as (api, urls):
        alice = await api.user("alice")
        _character_id, chat_id = await _chat(alice)
        _other_character, other_chat = await _chat(alice, "Thistle")
        warmer = api.container.warmer
        await _arm(urls["a"], mode="status", status=503, count=1)
        await _open(api, alice, f"/api/v1/chats/{other_chat}")
        assert warmer.counts["retried"] == 1
        assert warmer.counts["sent"] == 1
        await _arm(urls["a"], mode="status", status=503, count=2)
        await _open(api, alice, f"/api/v1/chats/{chat_id}")
        assert warmer.counts["failed"] == 1
        assert "503" in warmer.last_failure
        await _open(api, alice, f"/api/v1/chats/{chat_id}")
        assert warmer.counts["sent"] == 2
