"""Routing, failover, breakers, fallback and the quality gate over real HTTP backends
(SIMULATED OpenAI-compatible servers, each on its own loopback port)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Api, fleet, simulated_backend, wait_for_reply
from personae.app import create_app
from personae.errors import ConfigurationError
from personae.llm.router import rendezvous
from personae.settings import Settings


async def _chat(client: httpx.AsyncClient) -> str:
    character = await client.post("/api/v1/characters", json={"name": "Bramble"})
    chat = await client.post("/api/v1/chats", json={"character_id": character.json()["id"]})
    return str(chat.json()["id"])


async def _chat_on(client: httpx.AsyncClient, api: Api, backend: str) -> str:
    """A new chat whose rendezvous order puts `backend` first."""
    for _ in range(40):
        chat_id = await _chat(client)
        if rendezvous(chat_id, api.container.router.backends)[0].name == backend:
            return chat_id
    raise AssertionError(f"no chat of 40 hashed to {backend} first")


async def _reply(client: httpx.AsyncClient, chat_id: str, text: str) -> dict[str, Any]:
    sent = await client.put(f"/api/v1/chats/{chat_id}/messages/{text}", json={"content": text})
    assert sent.status_code == 202, sent.text
    return await wait_for_reply(client, chat_id, sent.json()["reply"]["id"], timeout_s=30)


async def _arm(url: str, **fault: Any) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        (await client.post("/simulation/faults", json=fault)).raise_for_status()


async def _requests(url: str) -> int:
    async with httpx.AsyncClient(base_url=url) as client:
        return int((await client.get("/simulation/stats")).json()["requests"])


async def test_a_conversation_stays_on_the_backend_that_served_it(
    make_settings: Callable[..., Settings],
) -> None:
    async with fleet(make_settings, {"a": {}, "b": {}}) as (api, urls):
        alice = await api.user("alice")
        chat_id = await _chat_on(alice, api, "a")
        await _arm(urls["a"], mode="status", status=500)  # the first turn fails over to b
        first = await _reply(alice, chat_id, "one")
        assert (first["status"], first["backend"], first["fallback"]) == ("complete", "b", False)
        for turn in ("two", "three", "four"):
            reply = await _reply(alice, chat_id, turn)
            assert reply["backend"] == "b", "affinity keeps the chat where its cache is"


async def test_without_affinity_the_least_loaded_backend_is_taken(
    make_settings: Callable[..., Settings],
) -> None:
    async with fleet(make_settings, {"a": {}, "b": {}}, routing_affinity=False) as (api, urls):
        alice = await api.user("alice")
        chat_id = await _chat(alice)
        await _arm(urls["a"], mode="status", status=500)
        assert (await _reply(alice, chat_id, "one"))["backend"] == "b"
        later = [(await _reply(alice, chat_id, turn))["backend"] for turn in ("t2", "t3", "t4")]
        assert set(later) == {"a", "b"}, "idle backends are taken in turn, not by history"


async def test_a_backend_that_stalls_mid_reply_is_left_and_the_reply_continues_elsewhere(
    make_settings: Callable[..., Settings],
) -> None:
    async with fleet(make_settings, {"a": {}, "b": {}}, between_tokens_timeout_s=0.3) as (
        api,
        urls,
    ):
        alice = await api.user("alice")
        chat_id = await _chat_on(alice, api, "a")
        await _arm(urls["a"], mode="stall", after_tokens=5)
        reply = await _reply(alice, chat_id, "hello")
        assert reply["status"] == "complete"
        assert reply["backend"] == "b"
        words = reply["content"].split()
        assert words[:5] == ["the", "tea", "is", "warm", "and"], "a's words were kept"
        assert len(words) == 5 + 12, "b continued from them"


async def test_malformed_stream_500_and_429_each_move_the_reply_on(
    make_settings: Callable[..., Settings],
) -> None:
    async with fleet(make_settings, {"a": {}, "b": {}}) as (api, urls):
        alice = await api.user("alice")
        for number, fault in enumerate(
            [
                {"mode": "malformed", "after_tokens": 3},
                {"mode": "status", "status": 500},
                {"mode": "status", "status": 429},
            ]
        ):
            chat_id = await _chat_on(alice, api, "a")
            await _arm(urls["a"], **fault)
            reply = await _reply(alice, chat_id, f"m{number}")
            assert (reply["status"], reply["backend"]) == ("complete", "b"), fault


async def test_an_open_breaker_keeps_requests_away_from_a_failing_backend(
    make_settings: Callable[..., Settings],
) -> None:
    async with fleet(make_settings, {"a": {}, "b": {}}) as (api, urls):
        alice = await api.user("alice")
        await _arm(urls["a"], mode="status", status=500, count=100)
        for number in range(3):  # three failures in a row open a's breaker
            await _reply(alice, await _chat_on(alice, api, "a"), f"f{number}")
        seen = await _requests(urls["a"])
        for number in range(3):
            reply = await _reply(alice, await _chat(alice), f"g{number}")
            assert reply["backend"] == "b"
        assert await _requests(urls["a"]) == seen, "no request reached the open backend"


async def test_when_the_primaries_are_down_the_fallback_answers_and_says_so(
    make_settings: Callable[..., Settings],
) -> None:
    async with fleet(make_settings, {"big": {"fail_rate": 1.0}, "small": {"role": "fallback"}}) as (
        api,
        _,
    ):
        alice = await api.user("alice")
        reply = await _reply(alice, await _chat(alice), "hi")
        assert (reply["status"], reply["backend"], reply["fallback"]) == (
            "complete",
            "small",
            True,
        )
        assert reply["labels"]["fallback"] is True


async def test_every_backend_down_ends_failed_retryable(
    make_settings: Callable[..., Settings],
) -> None:
    async with fleet(make_settings, {"a": {"fail_rate": 1.0}}, job_max_attempts=2) as (api, _):
        alice = await api.user("alice")
        reply = await _reply(alice, await _chat(alice), "hi")
        assert (reply["status"], reply["error_code"], reply["retryable"]) == (
            "failed",
            "backend_unavailable",
            True,
        )


async def test_a_context_length_error_fails_clearly_without_retrying(
    make_settings: Callable[..., Settings],
) -> None:
    async with fleet(make_settings, {"a": {}}) as (api, urls):
        alice = await api.user("alice")
        await _arm(urls["a"], mode="context")
        reply = await _reply(alice, await _chat(alice), "hi")
        assert (reply["status"], reply["error_code"], reply["retryable"]) == (
            "failed",
            "context_too_long",
            False,
        )


async def test_a_looping_reply_is_caught_regenerated_once_then_labelled(
    make_settings: Callable[..., Settings],
) -> None:
    async with fleet(make_settings, {"a": {"loop": True}}, max_reply_tokens=200) as (api, _):
        alice = await api.user("alice")
        reply = await _reply(alice, await _chat(alice), "hi")
        assert reply["status"] == "complete"
        assert reply["quality"] == "repetitive"
        assert reply["labels"]["regenerated"] is True
        assert len(reply["content"].split()) < 200, "the stream was stopped at the loop"


async def test_a_backend_removed_while_a_reply_runs_on_it_lets_the_reply_finish(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    backends_file = tmp_path / "backends.txt"
    async with (
        simulated_backend(name="old", tokens_per_second=20) as old,
        simulated_backend(name="new") as new,
    ):
        backends_file.write_text(f"old={old}\n")
        settings = make_settings(backend_url=None, backends_file=backends_file, max_reply_tokens=30)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            api = Api(app)
            alice = await api.user("alice")
            chat_id = await _chat(alice)
            sent = await alice.put(f"/api/v1/chats/{chat_id}/messages/a", json={"content": "a"})
            reply_id = sent.json()["reply"]["id"]
            await wait_for_reply(alice, chat_id, reply_id, statuses={"generating"})
            backends_file.write_text(f"new={new}\n")
            await app.state.container.fleet.reload()
            finished = await wait_for_reply(alice, chat_id, reply_id)
            assert (finished["status"], finished["backend"]) == ("complete", "old")
            later = await _reply(alice, chat_id, "b")
            assert later["backend"] == "new"
            assert [b.name for b in app.state.container.router.backends] == ["new"]
            await api.aclose()


async def test_bad_backend_settings_are_refused_at_start(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(backend_url=None, backends=["broken"]))
    with pytest.raises(ConfigurationError, match="NAME=URL"):
        async with app.router.lifespan_context(app):
            pass
