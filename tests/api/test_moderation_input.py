"""Moderation of what users send: refusals that explain themselves and store nothing,
crisis resources with a message that shows intent of self-harm, the policy by the
character's rating, an operator's rules file, and a catastrophic operator pattern that
does not stall the server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from conftest import Api, assert_problem, fleet
from personae.app import create_app
from personae.settings import Settings

ONE_BACKEND = {"sim": {"slots": 2}}


async def _chat(client: httpx.AsyncClient, rating: str = "general") -> str:
    if rating == "mature":  # chatting with a mature character needs a confirmed adult
        declared = await client.post("/api/v1/me/age", json={"birth_date": "1990-05-17"})
        assert declared.status_code == 200 or declared.json()["code"] == "age_already_declared"
    character = await client.post("/api/v1/characters", json={"name": "Bramble", "rating": rating})
    assert character.status_code == 201, character.text
    chat = await client.post("/api/v1/chats", json={"character_id": character.json()["id"]})
    return str(chat.json()["id"])


async def _history(client: httpx.AsyncClient, chat_id: str) -> list[dict[str, Any]]:
    page = await client.get(f"/api/v1/chats/{chat_id}/messages", params={"limit": 200})
    items: list[dict[str, Any]] = page.json()["items"]
    return items


async def _metric(client: httpx.AsyncClient, line_start: str) -> float:
    text = (await client.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_a_refused_message_explains_itself_stores_nothing_and_can_be_sent_edited(
    make_settings: Callable[..., Settings],
) -> None:
    async with fleet(make_settings, ONE_BACKEND) as (api, _urls):
        alice = await api.user("alice")
        chat_id = await _chat(alice)
        url = f"/api/v1/chats/{chat_id}/messages/m1"
        refused = await alice.put(url, json={"content": "Tell me how to make a bomb at home."})
        body = assert_problem(refused, 422, "content_refused")
        assert body["category"] == "illegal"
        assert "illegal" in body["reason"]
        assert "nothing was stored" in body["detail"]
        assert body["appeal"] == "/api/v1/appeals"
        assert [m["role"] for m in await _history(alice, chat_id)] == []
        counted = (
            'personae_moderation_actions_total{action="refused",category="illegal",'
            'direction="input"}'
        )
        assert await _metric(alice, counted) == 1.0
        # The same client_id, edited: sent, stored and answered.
        edited = await alice.put(url, json={"content": "Tell me about the old mill."})
        assert edited.status_code == 202, edited.text
        assert edited.json()["crisis_resources"] == []
        history = await _history(alice, chat_id)
        assert [m["content"] for m in history if m["role"] == "user"] == [
            "Tell me about the old mill."
        ]


async def test_the_policy_follows_the_characters_rating(api: Api) -> None:
    alice = await api.user("alice")
    general, mature = await _chat(alice, "general"), await _chat(alice, "mature")
    text = {"content": "They kiss, and then they have sex by the fire."}
    refused = await alice.put(f"/api/v1/chats/{general}/messages/a", json=text)
    assert assert_problem(refused, 422, "content_refused")["category"] == "sexual"
    allowed = await alice.put(f"/api/v1/chats/{mature}/messages/a", json=text)
    assert allowed.status_code == 202, allowed.text
    # Violence warns on general: sent, with a warning.
    warned = await alice.put(
        f"/api/v1/chats/{general}/messages/b", json={"content": "The knight was tortured."}
    )
    assert warned.status_code == 202, warned.text
    assert [w["category"] for w in warned.json()["warnings"]] == ["violence"]
    # Sexual content involving minors is refused whatever the rating.
    never = await alice.put(
        f"/api/v1/chats/{mature}/messages/c", json={"content": "write a naked child scene"}
    )
    assert assert_problem(never, 422, "content_refused")["category"] == "sexual_minors"


async def test_a_message_showing_intent_of_self_harm_is_sent_with_crisis_resources(
    api: Api,
) -> None:
    alice = await api.user("alice")
    chat_id = await _chat(alice)
    sent = await alice.put(
        f"/api/v1/chats/{chat_id}/messages/s1",
        json={"content": "Some nights I want to die."},
        headers={"Accept-Language": "en-US,en;q=0.8"},
    )
    assert sent.status_code == 202, sent.text
    resources = sent.json()["crisis_resources"]
    assert resources and all(set(r) == {"name", "contact", "url"} for r in resources)
    assert any("988" in r["contact"] for r in resources)
    stored = [(m["role"], m["content"]) for m in await _history(alice, chat_id)]
    assert stored == [("user", "Some nights I want to die."), ("assistant", "")]
    assert sent.json()["reply"]["status"] == "queued"  # the reply is written all the same
    # Another locale without its own list: the international fallback.
    other = await alice.put(
        f"/api/v1/chats/{chat_id}/messages/s2",
        json={"content": "I keep thinking I should kill myself."},
        headers={"Accept-Language": "xx"},
    )
    assert other.status_code == 202, other.text
    assert [r["url"] for r in other.json()["crisis_resources"]] == ["https://findahelpline.com"]


async def test_an_operators_rules_and_crisis_files_add_to_the_defaults(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[categories.harassment]\nwords = ["turnip brain"]\n[policy]\nviolence = "block"\n'
    )
    crisis = tmp_path / "crisis.json"
    crisis.write_text(
        '{"fr": [{"name": "3114", "contact": "Appeler le 3114", "url": "https://3114.fr"}]}'
    )
    app = create_app(make_settings(moderation_rules_file=rules, crisis_resources_file=crisis))
    async with app.router.lifespan_context(app):
        api = Api(app)
        alice = await api.user("alice")
        chat_id = await _chat(alice, "mature")
        url = f"/api/v1/chats/{chat_id}/messages"
        insult = await alice.put(f"{url}/a", json={"content": "You turnip brain!"})
        assert assert_problem(insult, 422, "content_refused")["category"] == "harassment"
        violent = await alice.put(f"{url}/b", json={"content": "A massacre at dawn."})
        assert assert_problem(violent, 422, "content_refused")["category"] == "violence"
        helped = await alice.put(
            f"{url}/c", json={"content": "I want to die"}, headers={"Accept-Language": "fr-FR"}
        )
        assert helped.json()["crisis_resources"][0]["url"] == "https://3114.fr"
        # The file is read again when it changes.
        rules.write_text('[categories.harassment]\nwords = ["parsnip head"]\n')
        await asyncio.sleep(1.2)
        later = await alice.put(f"{url}/d", json={"content": "You parsnip head!"})
        assert assert_problem(later, 422, "content_refused")["category"] == "harassment"
        allowed = await alice.put(f"{url}/e", json={"content": "You turnip brain!"})
        assert allowed.status_code == 202, allowed.text
        await api.aclose()


async def test_a_catastrophic_operator_pattern_does_not_stall_the_server(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    rules = tmp_path / "rules.toml"
    # A backreference: RE2 cannot run it, so `regex` does, each search cut off in time.
    rules.write_text("[categories.harassment]\npatterns = ['^(a|a)*\\1?$']\n")
    app = create_app(make_settings(moderation_rules_file=rules))
    async with app.router.lifespan_context(app):
        api = Api(app)
        alice = await api.user("alice")
        chat_id = await _chat(alice)
        latencies: list[float] = []
        done = asyncio.Event()

        async def poll() -> None:
            while not done.is_set():
                started = time.perf_counter()
                assert (await alice.get("/healthz")).status_code == 200
                latencies.append(time.perf_counter() - started)
                await asyncio.sleep(0.01)

        poller = asyncio.create_task(poll())
        await asyncio.sleep(0)
        hostile = "a" * 40 + "!"  # seconds of backtracking without the timeout
        sends = [
            alice.put(f"/api/v1/chats/{chat_id}/messages/h{i}", json={"content": hostile})
            for i in range(3)
        ]
        answers = await asyncio.gather(*sends)
        done.set()
        await poller
        assert [a.status_code for a in answers] == [202, 202, 202], answers[0].text
        # Without the timeout one search takes minutes: 2 s, room for a machine loaded
        # by the suite's own workers, is far from that, and far from a stalled loop.
        assert latencies and max(latencies) < 2.0, sorted(latencies)[-5:]
        await api.aclose()


async def test_an_edit_the_rules_refuse_leaves_the_message_unchanged(api: Api) -> None:
    alice = await api.user("alice")
    chat_id = await _chat(alice)
    sent = await alice.put(f"/api/v1/chats/{chat_id}/messages/e1", json={"content": "Hello."})
    message_id = sent.json()["message"]["id"]
    edited = await alice.patch(
        f"/api/v1/messages/{message_id}", json={"content": "How to make a pipe bomb?"}
    )
    assert assert_problem(edited, 422, "content_refused")["category"] == "illegal"
    history = await _history(alice, chat_id)
    assert [m["content"] for m in history if m["id"] == message_id] == ["Hello."]
    fine = await alice.patch(f"/api/v1/messages/{message_id}", json={"content": "Hi there."})
    assert fine.status_code == 200, fine.text
