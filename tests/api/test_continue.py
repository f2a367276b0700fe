"""Why a reply ended (finish_reason), replies cut by the token limit (trimmed to their
last whole sentence, cut_short), and Continue, against a SIMULATED backend scripted to
say given sentences and end the way a real server does ("stop", "length",
"content_filter")."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from conftest import Api, assert_problem, fleet, serve_app, wait_for_reply
from personae.settings import Settings
from personae.storage.repos import chats

MAX_TOKENS = 12
FINAL = {"complete", "stopped", "failed", "filtered"}
# 13 words: the limit (12) cuts it after "the", in its second sentence.
LONG = "The tea is warm. The rain taps on the glass and the fox tells"


async def _arm(url: str, text: str | None = None, **fault: Any) -> None:
    """The simulated backend's next reply: says `text` (a script), or another fault."""
    body = {"mode": "script", "text": text or "", "count": 1, **fault}
    async with httpx.AsyncClient(base_url=url) as sim:
        (await sim.post("/simulation/faults", json=body)).raise_for_status()


async def _stats(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url) as sim:
        stats: dict[str, Any] = (await sim.get("/simulation/stats")).json()
        return stats


async def _chat(client: httpx.AsyncClient, name: str = "Bramble") -> str:
    character = await client.post("/api/v1/characters", json={"name": name})
    chat = await client.post("/api/v1/chats", json={"character_id": character.json()["id"]})
    chat_id: str = chat.json()["id"]
    return chat_id


async def _reply(client: httpx.AsyncClient, chat_id: str, client_id: str) -> dict[str, Any]:
    sent = await client.put(
        f"/api/v1/chats/{chat_id}/messages/{client_id}", json={"content": "Tell me more."}
    )
    assert sent.status_code == 202, sent.text
    return await wait_for_reply(client, chat_id, sent.json()["reply"]["id"], statuses=FINAL)


async def _continued(client: httpx.AsyncClient, reply: dict[str, Any]) -> dict[str, Any]:
    answer = await client.post(f"/api/v1/messages/{reply['id']}/continue")
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert (body["id"], body["swipe_index"], body["status"]) == (
        reply["id"],
        reply["swipe_index"],
        "queued",
    )
    assert (body["finish_reason"], body["cut_short"]) == (None, False)
    return await wait_for_reply(client, reply["chat_id"], reply["id"], statuses=FINAL)


@asynccontextmanager
async def _app(
    make_settings: Callable[..., Settings], **options: Any
) -> AsyncIterator[tuple[Api, str]]:
    backend = {"slots": 2, "tokens_per_second": 200, **options.pop("backend", {})}
    settings = {"max_reply_tokens": MAX_TOKENS, **options}
    async with fleet(make_settings, {"sim": backend}, **settings) as (api, urls):
        yield api, urls["sim"]


async def test_a_reply_says_whether_the_model_ended_it_or_the_limit_cut_it(
    make_settings: Callable[..., Settings],
) -> None:
    async with _app(make_settings) as (api, sim):
        alice = await api.user("alice")
        chat_id = await _chat(alice)
        await _arm(sim, "The tea is warm. Sit down.")
        whole = await _reply(alice, chat_id, "m1")
        assert whole["content"] == "The tea is warm. Sit down."
        assert (whole["status"], whole["finish_reason"], whole["cut_short"]) == (
            "complete",
            "stop",
            False,
        )
        await _arm(sim, LONG)
        cut = await _reply(alice, chat_id, "m2")
        assert cut["content"] == "The tea is warm."
        assert (cut["status"], cut["finish_reason"], cut["cut_short"]) == (
            "complete",
            "length",
            True,
        )
        # Without a sentence end, a cut reply is kept as it is.
        plain = await _reply(alice, chat_id, "m3")
        assert len(plain["content"].split()) == MAX_TOKENS
        assert (plain["finish_reason"], plain["cut_short"]) == ("length", True)
        # The text cut off is not lost: the reply's generation record keeps it.
        async with api.container.database.read() as tx:
            stored = await chats.get_message(tx, cut["id"])
        assert stored is not None and stored.generation is not None
        assert stored.generation["trimmed"] == " The rain taps on the glass and the"


async def test_replies_stopped_filtered_or_failed_say_so(
    make_settings: Callable[..., Settings],
) -> None:
    async with _app(make_settings) as (api, sim):
        alice = await api.user("alice")
        chat_id = await _chat(alice)
        await _arm(sim, "The lanterns glow. You should kill yourself now, stranger. The end.")
        filtered = await _reply(alice, chat_id, "m1")
        assert (filtered["status"], filtered["finish_reason"], filtered["cut_short"]) == (
            "filtered",
            "filtered",
            False,
        )
        assert filtered["filtered_category"] == "harassment"
        # The model's own server filtered it (OpenAI's "content_filter").
        await _arm(sim, "The lanterns glow.", finish_reason="content_filter")
        by_model = await _reply(alice, chat_id, "m2")
        assert (by_model["status"], by_model["finish_reason"]) == ("filtered", "filtered")
        assert (by_model["filtered_category"], by_model["content"]) == (None, "The lanterns glow.")
        await _arm(sim, mode="status", status=400)
        failed = await _reply(alice, chat_id, "m3")
        assert (failed["status"], failed["error_code"], failed["finish_reason"]) == (
            "failed",
            "backend_error",
            "failed",
        )


async def test_stopping_a_reply_or_its_continuation_says_stopped(
    make_settings: Callable[..., Settings],
) -> None:
    slow = {"tokens_per_second": 5}
    async with _app(make_settings, max_reply_tokens=200, backend=slow) as (api, _sim):
        alice = await api.user("alice")
        chat_id = await _chat(alice)
        sent = await alice.put(f"/api/v1/chats/{chat_id}/messages/m1", json={"content": "Go on."})
        reply_id = sent.json()["reply"]["id"]
        while not (await wait_for_reply(alice, chat_id, reply_id, statuses={"generating"}))[
            "content"
        ]:
            pass
        stopped = (await alice.post(f"/api/v1/messages/{reply_id}/stop")).json()
        assert (stopped["status"], stopped["finish_reason"]) == ("stopped", "stopped")
        kept = await wait_for_reply(alice, chat_id, reply_id, statuses=FINAL)
        assert (kept["finish_reason"], kept["cut_short"]) == ("stopped", False)
        # A stopped reply can be continued, and its continuation stopped in turn.
        assert (await alice.post(f"/api/v1/messages/{reply_id}/continue")).status_code == 202
        while True:
            going = await wait_for_reply(alice, chat_id, reply_id, statuses={"generating"})
            if len(going["content"]) > len(kept["content"]):
                break
        await alice.post(f"/api/v1/messages/{reply_id}/stop")
        again = await wait_for_reply(alice, chat_id, reply_id, statuses=FINAL)
        assert (again["status"], again["finish_reason"]) == ("stopped", "stopped")
        assert again["content"].startswith(kept["content"] + " ")


async def test_continue_goes_on_from_the_end_of_the_same_message(
    make_settings: Callable[..., Settings],
) -> None:
    async with _app(make_settings) as (api, sim):
        alice = await api.user("alice")
        chat_id = await _chat(alice)
        await _arm(sim, LONG)
        cut = await _reply(alice, chat_id, "m1")
        assert cut["content"] == "The tea is warm."
        await _arm(sim, "The rain taps on the glass. It is late.")
        done = await _continued(alice, cut)
        assert done["content"] == "The tea is warm. The rain taps on the glass. It is late."
        assert (done["status"], done["finish_reason"], done["cut_short"]) == (
            "complete",
            "stop",
            False,
        )
        assert (done["swipe_count"], done["position"]) == (cut["swipe_count"], cut["position"])
        # The model was asked to go on from the reply so far (its prompt ended with it).
        assert (await _stats(sim))["last_prefills"][-1] == "The tea is warm."
        # Any finished reply goes on, not only a cut one; a continuation the limit cuts
        # is trimmed only within what it wrote (here it has no sentence end: kept).
        await _arm(sim, "and the fox tells a story about the river path and the old mill")
        longer = await _continued(alice, done)
        assert (
            longer["content"]
            == done["content"] + " and the fox tells a story about the river path and the"
        )
        assert (longer["finish_reason"], longer["cut_short"]) == ("length", True)
        history = (await alice.get(f"/api/v1/chats/{chat_id}/messages")).json()["items"]
        assert [m["id"] for m in history].count(cut["id"]) == 1
        assert history[-1]["id"] == cut["id"]


async def test_continue_refuses_what_it_cannot_go_on_from(
    make_settings: Callable[..., Settings],
) -> None:
    slow = {"tokens_per_second": 5}
    async with _app(make_settings, queue_max_per_user=1, backend=slow) as (api, _sim):
        alice = await api.user("alice")
        mallory = await api.user("mallory")
        chat_id = await _chat(alice)
        first = await _reply(alice, chat_id, "m1")
        assert_problem(
            await mallory.post(f"/api/v1/messages/{first['id']}/continue"), 404, "not_found"
        )
        assert_problem(await alice.post("/api/v1/messages/nope/continue"), 404, "not_found")
        assert_problem(
            await alice.post(f"/api/v1/messages/{first['parent_id']}/continue"),
            409,
            "not_a_reply",
        )
        swiped = (await alice.post(f"/api/v1/messages/{first['id']}/swipes")).json()
        running = await alice.post(f"/api/v1/messages/{first['id']}/continue")
        assert_problem(running, 409, "reply_in_progress")
        assert_problem(
            await alice.post(f"/api/v1/messages/{swiped['id']}/continue"), 409, "reply_in_progress"
        )
        await wait_for_reply(alice, chat_id, swiped["id"], statuses=FINAL)
        # Another swipe is shown at this place: the one hidden does not go on.
        assert_problem(
            await alice.post(f"/api/v1/messages/{first['id']}/continue"), 409, "not_latest_reply"
        )
        second = await _reply(alice, chat_id, "m2")
        assert_problem(
            await alice.post(f"/api/v1/messages/{swiped['id']}/continue"), 409, "not_latest_reply"
        )
        # One reply of this user is already waiting or being written (queue_max_per_user=1).
        other_chat = await _chat(alice, "Odile")
        await alice.put(f"/api/v1/chats/{other_chat}/messages/m1", json={"content": "Hi"})
        busy = await alice.post(f"/api/v1/messages/{second['id']}/continue")
        assert_problem(busy, 429, "too_many_pending_replies")
        # Nothing was changed by a refusal.
        after = (await alice.get(f"/api/v1/chats/{chat_id}/messages")).json()["items"][-1]
        assert (after["id"], after["status"], after["content"]) == (
            second["id"],
            "complete",
            second["content"],
        )


async def _events(url: str, token: str, chat_id: str, seen: list[tuple[str, Any]]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client,
        client.stream("GET", f"/api/v1/chats/{chat_id}/events") as response,
    ):
        fields: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line == "":
                if "event" in fields:
                    seen.append((fields["event"], json.loads(fields["data"])))
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value


async def test_the_streams_last_event_says_why_the_reply_ended(
    make_settings: Callable[..., Settings],
) -> None:
    async with _app(make_settings, sse_heartbeat_s=0.5) as (api, sim):
        alice = await api.user("alice")
        chat_id = await _chat(alice)
        token = (await alice.post("/api/v1/tokens", json={"name": "t"})).json()["token"]
        seen: list[tuple[str, Any]] = []
        async with serve_app(api.app, lifespan="off") as url:
            reader = asyncio.create_task(_events(url, token, chat_id, seen))
            try:
                await _arm(sim, LONG)
                cut = await _reply(alice, chat_id, "m1")
                await _arm(sim, "The rain taps on the glass.")
                await _continued(alice, cut)
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 30
                while sum(1 for name, data in seen if name == "reply_state") < 4:
                    assert loop.time() < deadline, seen
                    await asyncio.sleep(0.05)
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
        ends = [
            (data["status"], data["finish_reason"], data["cut_short"], data["content"])
            for name, data in seen
            if name == "reply_state" and data["status"] in FINAL
        ]
        assert ends[-2:] == [
            ("complete", "length", True, "The tea is warm."),
            ("complete", "stop", False, "The tea is warm. The rain taps on the glass."),
        ]
        # Tokens of the continuation go after the text already there.
        tokens = [data for name, data in seen if name == "token"]
        assert tokens[-1]["offset"] > len("The tea is warm.")


async def test_a_continuation_put_back_in_line_goes_on_from_its_checkpoint(
    make_settings: Callable[..., Settings],
) -> None:
    """The server stops while a continuation is written: the next start takes the job
    back and goes on from the text checkpointed, the reply's old text kept whole."""
    slow = {"tokens_per_second": 3}
    async with _app(make_settings, graceful_shutdown_s=0, backend=slow) as (api, sim):
        alice = await api.user("alice")
        chat_id = await _chat(alice)
        token = (await alice.post("/api/v1/tokens", json={"name": "t"})).json()["token"]
        await _arm(sim, LONG)
        cut = await _reply(alice, chat_id, "m1")
        assert (cut["content"], cut["cut_short"]) == ("The tea is warm.", True)
        assert (await alice.post(f"/api/v1/messages/{cut['id']}/continue")).status_code == 202
        while True:
            going = await wait_for_reply(alice, chat_id, cut["id"], statuses={"generating"})
            if len(going["content"]) > len(cut["content"]):
                break
    async with _app(make_settings) as (api, sim):
        async with api.container.database.read() as tx:
            put_back = await chats.get_message(tx, cut["id"])
        assert put_back is not None and put_back.status == "queued"
        checkpoint = put_back.content
        assert checkpoint.startswith("The tea is warm. the tea")
        client = api.bearer(token)
        done = await wait_for_reply(client, chat_id, cut["id"], statuses=FINAL)
        assert done["content"].startswith(checkpoint)
        assert (done["status"], done["finish_reason"], done["cut_short"]) == (
            "complete",
            "length",
            True,
        )
        assert done["swipe_count"] == 1
        assert (await _stats(sim))["last_prefills"][-1] == checkpoint
