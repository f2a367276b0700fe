"""Personas, pinned memories, the summary job, recall and prompt inspection, end to end."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from memory_helpers import fill_history, start_chat, wait_until_indexed

from conftest import Api, assert_problem, fleet, wait_for_reply
from personae.app import create_app
from personae.services.memory import SUMMARY_JOB
from personae.settings import Settings
from personae.storage.repos import jobs as job_repo
from personae.storage.repos import memories as memory_repo


async def _send(client: Any, chat_id: str, client_id: str, content: str) -> dict[str, Any]:
    sent = await client.put(
        f"/api/v1/chats/{chat_id}/messages/{client_id}", json={"content": content}
    )
    assert sent.status_code == 202, sent.text
    return dict(sent.json())


async def test_personas_one_default_chosen_per_chat(api: Api) -> None:
    alice = await api.user("alice")
    first = (await alice.post("/api/v1/personas", json={"name": "Morgan"})).json()
    assert first["is_default"] is True
    second = await alice.post(
        "/api/v1/personas",
        json={"name": "Rin", "description": "A cartographer.", "is_default": True},
    )
    assert second.status_code == 201, second.text
    listed = (await alice.get("/api/v1/personas")).json()
    assert [p["is_default"] for p in listed] == [False, True]
    chat = await start_chat(alice)
    assert chat["persona_name"] == "Rin"  # the default
    chat = await start_chat(alice, persona_id=first["id"])
    assert chat["persona_name"] == "Morgan"
    messages = (await alice.get(f"/api/v1/chats/{chat['id']}/messages")).json()["items"]
    assert messages[0]["content"] == "Hello, Morgan."
    patched = await alice.patch(
        f"/api/v1/chats/{chat['id']}", json={"persona_id": second.json()["id"]}
    )
    assert patched.json()["persona_name"] == "Rin"
    inline = await start_chat(alice, persona={"name": "Guest"})
    assert inline["persona_name"] == "Guest"
    # Bad input: oversized fields, unknown or foreign ids.
    assert_problem(
        await alice.post("/api/v1/personas", json={"name": "x" * 65}), 422, "validation_error"
    )
    assert_problem(
        await alice.post("/api/v1/personas", json={"name": "A", "description": "d" * 4001}),
        422,
        "validation_error",
    )
    bob = await api.user("bob")
    assert_problem(await bob.get(f"/api/v1/personas/{first['id']}"), 404, "not_found")
    assert_problem(
        await bob.post(
            "/api/v1/chats", json={"character_id": chat["character_id"], "persona_id": first["id"]}
        ),
        404,
        "not_found",
    )
    assert (await alice.delete(f"/api/v1/personas/{second.json()['id']}")).status_code == 204
    assert (await alice.get("/api/v1/personas")).json()[0]["is_default"] is True


async def test_pins_are_bounded_and_unknown_ids_are_404(api: Api) -> None:
    alice = await api.user("alice")
    chat = await start_chat(alice)
    url = f"/api/v1/chats/{chat['id']}/memories"
    for index in range(15):
        answer = await alice.post(url, json={"content": f"fact {index}"})
        assert answer.status_code == 201, answer.text
    body = assert_problem(
        await alice.post(url, json={"content": "one too many"}), 409, "too_many_pinned_memories"
    )
    assert "15" in body["detail"]
    greeting = (await alice.get(f"/api/v1/chats/{chat['id']}/messages")).json()["items"][0]
    assert_problem(
        await alice.post(f"/api/v1/messages/{greeting['id']}/pin"), 409, "too_many_pinned_memories"
    )
    memories = (await alice.get(url)).json()["items"]
    assert (await alice.delete(f"/api/v1/memories/{memories[0]['id']}")).status_code == 204
    pinned = await alice.post(f"/api/v1/messages/{greeting['id']}/pin")
    assert pinned.status_code == 201 and pinned.json()["source_message_id"] == greeting["id"]
    assert_problem(await alice.post("/api/v1/messages/NOPE/pin"), 404, "not_found")
    assert_problem(await alice.delete("/api/v1/memories/NOPE"), 404, "not_found")
    assert_problem(await alice.get("/api/v1/chats/NOPE/memories"), 404, "not_found")
    assert_problem(await alice.get("/api/v1/messages/NOPE/prompt"), 404, "not_found")
    bob = await api.user("bob")
    assert_problem(await bob.get(url), 404, "not_found")
    assert_problem(await bob.delete(f"/api/v1/memories/{memories[1]['id']}"), 404, "not_found")


async def test_lorebook_pins_and_persona_reach_the_prompt_and_the_owner_sees_it(
    make_settings: Callable[..., Settings],
) -> None:
    async with fleet(make_settings, {"a": {"tokens_per_second": 2000}}) as (api, _urls):
        alice = await api.user("alice")
        persona = (
            await alice.post(
                "/api/v1/personas", json={"name": "Morgan", "description": "A sailor."}
            )
        ).json()
        chat = await start_chat(alice, persona_id=persona["id"])
        await alice.post(
            f"/api/v1/chats/{chat['id']}/memories",
            json={"content": "PIN: Morgan owes Ilsa 3 coins."},
        )
        sent = await _send(alice, chat["id"], "m1", "Why is the lighthouse dark?")
        reply = await wait_for_reply(alice, chat["id"], sent["reply"]["id"])
        assert reply["status"] == "complete", reply
        shown = await alice.get(f"/api/v1/messages/{reply['id']}/prompt")
        assert shown.status_code == 200, shown.text
        body = shown.json()
        system = body["parts"][0]["content"]
        assert "LORE-LIGHTHOUSE" in system and "LORE-ALWAYS" in system
        assert "LORE-KRAKEN" not in system
        assert "calls Morgan by name" in system and "About Morgan: A sailor." in system
        assert any(
            p["source"] == "memory" and "PIN: Morgan owes" in p["content"] for p in body["parts"]
        )
        assert body["parts"][-1]["content"] == "Why is the lighthouse dark?"
        assert [key for key, _tokens in body["included"]["lore"]] == ["3", "1"]
        assert body["included"]["tokens"] <= body["included"]["budget"]
        assert "left_out" in body
        bob = await api.user("bob")
        assert_problem(await bob.get(f"/api/v1/messages/{reply['id']}/prompt"), 404, "not_found")


async def test_recall_finds_a_fact_from_200_messages_back_and_a_summary_follows(
    make_settings: Callable[..., Settings],
) -> None:
    async with fleet(
        make_settings, {"a": {"tokens_per_second": 2000}}, embedding_model="lexical"
    ) as (
        api,
        _urls,
    ):
        alice = await api.user("alice")
        chat = await start_chat(alice)
        filler = "We walked along the quay and talked about the weather and the boats. " * 3
        texts = ["By the way, my sister Marguerite lives in Lisbon, near the old tram stop."]
        texts += [f"{filler}({index})" for index in range(199)]
        await fill_history(api.container, chat["id"], texts)
        # A first turn queues the indexing of what left the recent history (in the
        # background: that reply does not wait for it).
        first = await _send(alice, chat["id"], "hello", "Shall we walk to the harbour?")
        await wait_for_reply(alice, chat["id"], first["reply"]["id"])
        await wait_until_indexed(api.container, chat["id"])
        sent = await _send(
            alice, chat["id"], "q", "Remind me: where does my sister Marguerite live?"
        )
        reply = await wait_for_reply(alice, chat["id"], sent["reply"]["id"])
        record = (await alice.get(f"/api/v1/messages/{reply['id']}/prompt")).json()
        recalled = [p for p in record["parts"] if p["source"] == "recalled"]
        assert recalled and "Lisbon" in recalled[0]["content"], record["included"]
        assert record["left_out"]["history_before_position"] > 100
        # The history left out is summarized by a background job, stored as a memory.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while loop.time() < deadline:
            # Settled: written, and no later summary job of either turn still to come.
            async with api.container.database.read() as tx:
                pending = await memory_repo.has_open_job(tx, chat["id"], SUMMARY_JOB)
            items = (await alice.get(f"/api/v1/chats/{chat['id']}/memories")).json()["items"]
            summaries = [m for m in items if m["kind"] == "summary"]
            if summaries and not pending:
                break
            await asyncio.sleep(0.2)
        assert summaries, "no summary was written"
        first = summaries[-1]
        edited = await alice.patch(
            f"/api/v1/memories/{first['id']}", json={"content": "Edited summary."}
        )
        assert edited.json()["content"] == "Edited summary."
        # A second version, then undo it: the first one is in use again.
        async with api.container.database.write() as tx:
            await memory_repo.insert_memory(
                tx, chat_id=chat["id"], kind="summary", content="Newer.", through_position=50
            )
        items = (await alice.get(f"/api/v1/chats/{chat['id']}/memories")).json()["items"]
        newest = [m for m in items if m["kind"] == "summary"][-1]
        assert newest["content"] == "Newer."
        assert (await alice.delete(f"/api/v1/memories/{newest['id']}")).status_code == 204
        async with api.container.database.read() as tx:
            current = await memory_repo.current_summary(tx, chat["id"])
        assert current is not None and current.content == "Edited summary."


async def test_summary_jobs_wait_behind_replies(make_settings: Callable[..., Settings]) -> None:
    async with fleet(
        make_settings,
        {"a": {"slots": 1, "tokens_per_second": 6}},
        max_reply_tokens=8,
        summary_max_tokens=16,
    ) as (api, _urls):
        users = [await api.user(f"user{index}") for index in range(3)]
        chats = [await start_chat(user) for user in users]
        await fill_history(api.container, chats[0]["id"], ["Something happened. " * 5] * 40)
        # A reply occupies the only slot; then a summary and two replies wait.
        first = await _send(users[0], chats[0]["id"], "a", "Hello there")
        await asyncio.sleep(0.3)
        async with api.container.database.write() as tx:
            summary_job = await job_repo.insert_job(
                tx,
                kind="summary",
                user_id=None,
                chat_id=chats[0]["id"],
                message_id=None,
                payload={"before_position": 30},
                priority=-10,
            )
        await asyncio.sleep(0.05)
        others = [await _send(users[i], chats[i]["id"], "b", "Hi") for i in (1, 2)]
        for chat, sent in zip(chats, [first, *others], strict=True):
            client = users[chats.index(chat)]
            await wait_for_reply(client, chat["id"], sent["reply"]["id"])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while loop.time() < deadline:
            async with api.container.database.read() as tx:
                summary = await memory_repo.current_summary(tx, chats[0]["id"])
            if summary is not None:
                break
            await asyncio.sleep(0.1)
        assert summary is not None and summary.through_position is not None
        from sqlalchemy import select

        from personae.storage.tables import jobs

        async with api.container.database.read() as tx:
            rows = (await tx.execute(select(jobs.c.id, jobs.c.kind, jobs.c.started_at))).all()
        started = {row.id: row.started_at for row in rows}
        replies = [row.started_at for row in rows if row.kind == "reply"]
        # The summary was queued before two of the replies, yet started after all of them.
        assert all(at is not None and at <= started[summary_job.id] for at in replies)


async def test_a_real_model_reply_with_persona_and_pin(
    model_settings: Callable[..., Settings],
) -> None:
    app = create_app(model_settings())
    async with app.router.lifespan_context(app):
        api = Api(app)
        alice = await api.user("alice")
        persona = (await alice.post("/api/v1/personas", json={"name": "Morgan"})).json()
        chat = await start_chat(alice, persona_id=persona["id"])
        await alice.post(
            f"/api/v1/chats/{chat['id']}/memories", json={"content": "Morgan has a red boat."}
        )
        sent = await _send(alice, chat["id"], "m1", "Tell me about the lighthouse.")
        reply = await wait_for_reply(alice, chat["id"], sent["reply"]["id"])
        assert reply["status"] == "complete", reply
        assert reply["content"].strip()
        body = (await alice.get(f"/api/v1/messages/{reply['id']}/prompt")).json()
        assert any("red boat" in p["content"] for p in body["parts"])
        assert "LORE-LIGHTHOUSE" in body["parts"][0]["content"]
        await api.aclose()
