"""The classifier layer against a real local HTTP server answering like OpenAI's
/v1/moderations, and what happens when it fails: the rules alone decide (fail open),
the failure is counted, and chatting goes on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from conftest import Api, assert_problem, fleet, serve_app
from personae.app import create_app
from personae.services.moderation_classifier import (
    ClassifierUnavailable,
    guard_prompt,
    parse_guard_answer,
)
from personae.settings import Settings

_OPENAI_NAMES = [
    "sexual", "sexual/minors", "harassment", "harassment/threatening", "hate",
    "hate/threatening", "illicit", "illicit/violent", "self-harm", "self-harm/intent",
    "self-harm/instructions", "violence", "violence/graphic",
]  # fmt: skip


def moderation_server(mode: str, asked: list[dict[str, Any]]) -> Starlette:
    """An OpenAI-shaped moderation endpoint: flags harassment when the input says
    "zorblax"; `mode` "down" answers 500, "slow" answers after 10 s."""

    async def moderations(request: Request) -> Response:
        body = await request.json()
        asked.append({"body": body, "auth": request.headers.get("authorization")})
        if mode == "down":
            return JSONResponse({"error": {"message": "overloaded"}}, 500)
        if mode == "slow":
            await asyncio.sleep(10)
        flagged = "zorblax" in str(body.get("input", ""))
        categories = {name: False for name in _OPENAI_NAMES}
        scores = {name: 0.001 for name in _OPENAI_NAMES}
        if flagged:
            categories["harassment"] = True
            scores["harassment"] = 0.97
        result = {"flagged": flagged, "categories": categories, "category_scores": scores}
        return JSONResponse({"id": "modr-1", "model": "omni-moderation", "results": [result]})

    return Starlette(routes=[Route("/v1/moderations", moderations, methods=["POST"])])


async def _chat(client: httpx.AsyncClient) -> str:
    character = await client.post("/api/v1/characters", json={"name": "Bramble"})
    chat = await client.post("/api/v1/chats", json={"character_id": character.json()["id"]})
    return str(chat.json()["id"])


async def _failures(client: httpx.AsyncClient) -> float:
    for line in (await client.get("/metrics")).text.splitlines():
        if line.startswith('personae_moderation_classifier_failures_total{classifier="openai"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def _app_with(make_settings: Callable[..., Settings], url: str) -> Any:
    return create_app(
        make_settings(
            moderation_classifier="openai",
            moderation_classifier_url=url,
            moderation_classifier_api_key="sk-test-moderation",
            moderation_classifier_timeout_s=1.0,
        )
    )


async def test_the_classifier_refuses_what_the_rules_do_not_know(
    make_settings: Callable[..., Settings],
) -> None:
    asked: list[dict[str, Any]] = []
    async with serve_app(moderation_server("ok", asked)) as url:
        app = await _app_with(make_settings, url)
        async with app.router.lifespan_context(app):
            api = Api(app)
            alice = await api.user("alice")
            chat_id = await _chat(alice)
            refused = await alice.put(
                f"/api/v1/chats/{chat_id}/messages/a", json={"content": "You zorblax!"}
            )
            body = assert_problem(refused, 422, "content_refused")
            assert body["category"] == "harassment"
            fine = await alice.put(
                f"/api/v1/chats/{chat_id}/messages/b", json={"content": "Good morning."}
            )
            assert fine.status_code == 202, fine.text
            await api.aclose()
    assert [a["body"]["input"] for a in asked] == ["You zorblax!", "Good morning."]
    assert asked[0]["auth"] == "Bearer sk-test-moderation"


@pytest.mark.parametrize("mode", ["down", "slow"])
async def test_a_classifier_outage_lets_messages_through_on_the_rules_alone(
    make_settings: Callable[..., Settings], mode: str
) -> None:
    asked: list[dict[str, Any]] = []
    async with serve_app(moderation_server(mode, asked)) as url:
        app = await _app_with(make_settings, url)
        async with app.router.lifespan_context(app):
            api = Api(app)
            alice = await api.user("alice")
            chat_id = await _chat(alice)
            sent = await alice.put(
                f"/api/v1/chats/{chat_id}/messages/a", json={"content": "You zorblax!"}
            )
            assert sent.status_code == 202, sent.text  # fail open: not blocked forever
            assert await _failures(alice) == 1.0
            ruled = await alice.put(
                f"/api/v1/chats/{chat_id}/messages/b", json={"content": "kill yourself"}
            )
            assert assert_problem(ruled, 422, "content_refused")["category"] == "harassment"
            await api.aclose()
    assert asked, "the classifier was never asked"


def test_a_guard_models_answer_is_read_in_llama_guard_style() -> None:
    prompt = guard_prompt("hello")[0].content
    assert "S1: Sexual content involving minors." in prompt and "hello" in prompt
    assert parse_guard_answer("safe") == set()
    assert parse_guard_answer("unsafe\nS3,S5") == {"violence", "harassment"}
    assert parse_guard_answer(" unsafe\nS7 ") == {"illegal"}
    with pytest.raises(ClassifierUnavailable):
        parse_guard_answer("I cannot help with that")
    with pytest.raises(ClassifierUnavailable):
        parse_guard_answer("unsafe\nS42")


async def test_a_guard_model_through_a_backend_refuses_and_its_nonsense_fails_open(
    make_settings: Callable[..., Settings],
) -> None:
    backends = {"guard": {"slots": 2}}
    async with fleet(make_settings, backends, moderation_classifier="guard") as (api, urls):
        alice = await api.user("alice")
        chat_id = await _chat(alice)
        async with httpx.AsyncClient(base_url=urls["guard"]) as sim:
            armed = await sim.post(
                "/simulation/faults", json={"mode": "script", "text": "unsafe\nS5", "count": 1}
            )
            armed.raise_for_status()
            refused = await alice.put(
                f"/api/v1/chats/{chat_id}/messages/a", json={"content": "Nice hat."}
            )
            assert assert_problem(refused, 422, "content_refused")["category"] == "harassment"
            asked = (await sim.get("/simulation/stats")).json()["last_user_turns"]
            assert "S1: Sexual content involving minors." in asked[-1]
            assert "Nice hat." in asked[-1]
        # Unarmed, the simulated words are no verdict: the rules alone decide.
        sent = await alice.put(f"/api/v1/chats/{chat_id}/messages/b", json={"content": "Hi."})
        assert sent.status_code == 202, sent.text
        failures = (await alice.get("/metrics")).text
        assert 'personae_moderation_classifier_failures_total{classifier="guard"} 1.0' in failures
