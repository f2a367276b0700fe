"""Reports of characters, messages and users, and appeals: filed, refused, read back."""

from __future__ import annotations

from typing import Any

import httpx

from conftest import Api, assert_problem


async def _character(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    values = {"name": "Vex", "first_message": "Hello there.", **fields}
    response = await client.post("/api/v1/characters", json=values)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _greeting(client: httpx.AsyncClient, character_id: str) -> tuple[str, dict[str, Any]]:
    """A new chat with the character, and its greeting (an assistant message)."""
    chat = await client.post("/api/v1/chats", json={"character_id": character_id})
    assert chat.status_code == 201, chat.text
    chat_id = chat.json()["id"]
    history = await client.get(f"/api/v1/chats/{chat_id}/messages")
    return chat_id, dict(history.json()["items"][0])


async def _report(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await client.post("/api/v1/reports", json={"reason": "harassment", **body})


async def test_a_report_of_each_kind_is_stored_open_and_listed_as_mine(api: Api) -> None:
    alice = await api.user("alice")
    bob = await api.user("bob")
    character = await _character(alice)
    _chat_id, greeting = await _greeting(bob, character["id"])
    alice_id = (await alice.get("/api/v1/me")).json()["id"]

    filed = []
    for target, target_id in (
        ("character", character["id"]),
        ("message", greeting["id"]),
        ("user", alice_id),
    ):
        response = await _report(bob, target=target, target_id=target_id, note=f"about {target}")
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["target"] == target and body["target_id"] == target_id
        assert body["status"] == "open" and body["action"] is None
        assert body["reason"] == "harassment" and body["note"] == f"about {target}"
        filed.append(body["id"])

    mine = await bob.get("/api/v1/reports/mine")
    assert mine.status_code == 200, mine.text
    assert [r["id"] for r in mine.json()["reports"]] == list(reversed(filed))
    assert mine.json()["appeals"] == []
    assert (await alice.get("/api/v1/reports/mine")).json()["reports"] == []


async def test_what_the_reporter_cannot_see_is_not_found(api: Api) -> None:
    alice = await api.user("alice")
    bob = await api.user("bob")
    private = await _character(alice, visibility="private")
    public = await _character(alice)
    _chat_id, alices_greeting = await _greeting(alice, public["id"])

    for target, target_id in (
        ("character", private["id"]),
        ("message", alices_greeting["id"]),  # in alice's chat, not bob's
        ("character", "01HZZZZZZZZZZZZZZZZZZZZZZZ"),
        ("message", "nope"),
        ("user", "nope"),
    ):
        assert_problem(await _report(bob, target=target, target_id=target_id), 404, "not_found")
    # The owner may report their own private character's page (a shared account, say).
    assert (await _report(alice, target="character", target_id=private["id"])).status_code == 201


async def test_a_second_open_report_of_the_same_target_is_a_conflict(api: Api) -> None:
    alice = await api.user("alice")
    bob = await api.user("bob")
    character = await _character(alice)
    first = await _report(bob, target="character", target_id=character["id"])
    assert first.status_code == 201
    again = await _report(bob, target="character", target_id=character["id"], reason="spam")
    body = assert_problem(again, 409, "already_reported")
    assert body["report_id"] == first.json()["id"]
    # Somebody else may report it too.
    carol = await api.user("carol")
    assert (await _report(carol, target="character", target_id=character["id"])).status_code == 201


async def test_bad_reports_are_refused_and_nothing_is_stored(api: Api) -> None:
    alice = await api.user("alice")
    bob = await api.user("bob")
    character = await _character(alice)
    bob_id = (await bob.get("/api/v1/me")).json()["id"]
    cid = character["id"]
    for body in (
        {"target": "chat", "target_id": cid, "reason": "spam"},
        {"target": "character", "target_id": cid, "reason": "ugly"},
        {"target": "character", "reason": "spam"},
        {"target": "character", "target_id": "", "reason": "spam"},
        {"target_id": cid, "reason": "spam"},
        {"target": "character", "target_id": cid},
        {"target": "character", "target_id": cid, "reason": "spam", "note": "x" * 2001},
        {"target": "character", "target_id": cid, "reason": "spam", "extra": 1},
        {"target": "user", "target_id": bob_id, "reason": "spam"},  # oneself
    ):
        assert_problem(await bob.post("/api/v1/reports", json=body), 422, "validation_error")
    assert (await bob.get("/api/v1/reports/mine")).json()["reports"] == []
    ok = await _report(bob, target="character", target_id=cid, note="x" * 2000)
    assert ok.status_code == 201, ok.text


async def test_reports_need_an_account_and_are_rate_limited(
    make_settings: Any,
) -> None:
    from personae.app import create_app

    app = create_app(make_settings(report_rate_per_user="2/hour"))
    async with app.router.lifespan_context(app):
        api = Api(app)
        try:
            anonymous = api.client()
            response = await anonymous.post(
                "/api/v1/reports", json={"target": "user", "target_id": "x", "reason": "spam"}
            )
            assert_problem(response, 401, "not_authenticated")
            alice = await api.user("alice")
            bob = await api.user("bob")
            first = await _character(alice, name="One")
            second = await _character(alice, name="Two")
            third = await _character(alice, name="Three")
            for character in (first, second):
                response = await _report(bob, target="character", target_id=character["id"])
                assert response.status_code == 201
            limited = await _report(bob, target="character", target_id=third["id"])
            assert_problem(limited, 429, "rate_limited")
            assert "retry-after" in limited.headers
            appeal = await bob.post("/api/v1/appeals", json={"category": "x", "content": "y"})
            assert_problem(appeal, 429, "rate_limited")  # counted together
        finally:
            await api.aclose()


async def test_an_appeal_of_refused_text_or_of_a_message_of_ones_own_chat(api: Api) -> None:
    alice = await api.user("alice")
    bob = await api.user("bob")
    character = await _character(alice)
    chat_id, greeting = await _greeting(bob, character["id"])

    by_text = await bob.post(
        "/api/v1/appeals",
        json={"category": "violence", "content": "a sword fight in a story", "note": "fiction"},
    )
    assert by_text.status_code == 201, by_text.text
    assert by_text.json()["status"] == "open" and by_text.json()["content"].startswith("a sword")
    by_message = await bob.post(
        "/api/v1/appeals",
        json={"category": "sexual", "message_id": greeting["id"], "chat_id": chat_id},
    )
    assert by_message.status_code == 201, by_message.text
    assert by_message.json()["chat_id"] == chat_id
    # Without the chat id, the message's own chat is filled in.
    implied = await bob.post(
        "/api/v1/appeals", json={"category": "sexual", "message_id": greeting["id"]}
    )
    assert implied.json()["chat_id"] == chat_id

    mine = (await bob.get("/api/v1/reports/mine")).json()
    assert [a["id"] for a in mine["appeals"]] == [
        implied.json()["id"],
        by_message.json()["id"],
        by_text.json()["id"],
    ]

    # Another user's message, a wrong chat, an unknown message: not found.
    carol = await api.user("carol")
    for body in (
        {"category": "sexual", "message_id": greeting["id"]},
        {"category": "sexual", "message_id": "nope"},
    ):
        assert_problem(await carol.post("/api/v1/appeals", json=body), 404, "not_found")
    other_chat, _ = await _greeting(bob, character["id"])
    wrong_chat = {"category": "sexual", "message_id": greeting["id"], "chat_id": other_chat}
    assert_problem(await bob.post("/api/v1/appeals", json=wrong_chat), 404, "not_found")
    # Neither content nor a message; an empty category; a note too long.
    for body in (
        {"category": "sexual"},
        {"category": "sexual", "chat_id": chat_id},
        {"category": "", "content": "x"},
        {"category": " ", "content": "x"},
        {"category": "x" * 65, "content": "x"},
        {"content": "x"},
        {"category": "sexual", "content": "x", "note": "n" * 2001},
    ):
        assert_problem(await bob.post("/api/v1/appeals", json=body), 422, "validation_error")
