"""The moderators' queue: reports and appeals with context, actions with real effects,
the audit log, and who may do what."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import update

from conftest import PASSWORD, Api, assert_problem
from personae.storage.tables import users
from personae.storage.types import utcnow


async def _staff(api: Api, name: str, role: str = "moderator") -> httpx.AsyncClient:
    client = await api.user(name)
    await api.container.accounts.set_role(name, role)
    return client


async def _id(client: httpx.AsyncClient) -> str:
    return str((await client.get("/api/v1/me")).json()["id"])


async def _character(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    values = {"name": "Vex", "first_message": "Hello there.", **fields}
    response = await client.post("/api/v1/characters", json=values)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _report(client: httpx.AsyncClient, target: str, target_id: str) -> str:
    response = await client.post(
        "/api/v1/reports",
        json={"target": target, "target_id": target_id, "reason": "hate", "note": "look"},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _act(
    client: httpx.AsyncClient, report_id: str, action: str, **extra: Any
) -> httpx.Response:
    return await client.post(
        f"/api/v1/moderation/reports/{report_id}/actions",
        json={"action": action, "note": f"{action} it", **extra},
    )


async def _queue(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/moderation/queue", params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def _audit(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/moderation/audit")
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def _my_report(client: httpx.AsyncClient, report_id: str) -> dict[str, Any]:
    reports = (await client.get("/api/v1/reports/mine")).json()["reports"]
    return next(r for r in reports if r["id"] == report_id)


async def test_a_dismissed_report_is_audited_and_its_reporter_sees_the_outcome(api: Api) -> None:
    alice = await api.user("alice")
    bob = await api.user("bob")
    moderator = await _staff(api, "mod")
    character = await _character(alice, rating="teen", visibility="unlisted")
    report_id = await _report(bob, "character", character["id"])

    queued = await _queue(moderator)
    assert [item["id"] for item in queued] == [report_id]
    item = queued[0]
    assert item["kind"] == "report" and item["by_username"] == "bob"
    assert item["reason"] == "hate" and item["note"] == "look"
    context = item["context"]
    assert context["name"] == "Vex" and context["owner_username"] == "alice"
    assert context["rating"] == "teen" and context["visibility"] == "unlisted"
    assert context["hidden_at"] is None

    decided = await _act(moderator, report_id, "dismiss")
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "dismissed" and decided.json()["action"] == "dismiss"
    assert await _queue(moderator) == []
    assert [i["id"] for i in await _queue(moderator, status="dismissed")] == [report_id]

    entry = (await _audit(moderator))[0]
    assert entry["actor_username"] == "mod" and entry["action"] == "dismiss"
    assert entry["target_kind"] == "character" and entry["target_id"] == character["id"]
    assert entry["case_kind"] == "report" and entry["case_id"] == report_id
    assert entry["note"] == "dismiss it"

    mine = await _my_report(bob, report_id)
    assert mine["status"] == "dismissed" and mine["action"] == "dismiss"
    assert mine["resolved_at"] is not None
    assert "resolution_note" not in mine  # the moderator's note stays with the moderators
    # Decided once: a second decision is a conflict and writes no audit row.
    assert_problem(await _act(moderator, report_id, "warn"), 409, "case_closed")
    assert len(await _audit(moderator)) == 1


async def test_hiding_a_character_takes_it_out_of_discovery_for_all_but_its_owner(
    api: Api,
) -> None:
    alice = await api.user("alice")
    bob = await api.user("bob")
    carol = await api.user("carol")
    moderator = await _staff(api, "mod")
    character = await _character(alice)
    other = await _character(alice, name="Other")
    first = await _report(bob, "character", character["id"])
    second = await _report(carol, "character", character["id"])
    assert (
        await moderator.put(f"/api/v1/characters/{character['id']}/featured")
    ).status_code == 200

    decided = await _act(moderator, first, "hide_character")
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "actioned"

    anonymous = api.client()
    for viewer in (anonymous, bob):
        listed = (await viewer.get("/api/v1/characters")).json()["items"]
        assert [c["id"] for c in listed] == [other["id"]]
        found = (await viewer.get("/api/v1/characters", params={"q": "Vex"})).json()["items"]
        assert found == []
        assert_problem(await viewer.get(f"/api/v1/characters/{character['id']}"), 404, "not_found")
    featured = await anonymous.get("/api/v1/characters", params={"featured": "true"})
    assert featured.json()["items"] == []
    new_chat = await bob.post("/api/v1/chats", json={"character_id": character["id"]})
    assert_problem(new_chat, 404, "not_found")

    own = await alice.get(f"/api/v1/characters/{character['id']}")
    assert own.status_code == 200 and own.json()["hidden"] is True
    mine = (await alice.get("/api/v1/characters", params={"owner": "me"})).json()["items"]
    assert {c["id"]: c["hidden"] for c in mine} == {character["id"]: True, other["id"]: False}
    # Carol's report of the same character was decided with it.
    assert (await _my_report(carol, second))["action"] == "hide_character"
    assert await _queue(moderator) == []
    audit = await _audit(moderator)
    assert audit[0]["action"] == "hide_character"
    assert audit[0]["details"]["other_reports_closed"] == 1


async def test_a_removed_message_leaves_the_chat_and_stays_on_record(api: Api) -> None:
    alice = await api.user("alice")
    bob = await api.user("bob")
    moderator = await _staff(api, "mod")
    character = await _character(alice)
    chat = await bob.post("/api/v1/chats", json={"character_id": character["id"]})
    chat_id = chat.json()["id"]
    sent = await bob.put(f"/api/v1/chats/{chat_id}/messages/c1", json={"content": "after hi"})
    assert sent.status_code == 202, sent.text
    history = (await bob.get(f"/api/v1/chats/{chat_id}/messages")).json()["items"]
    greeting = history[0]
    report_id = await _report(bob, "message", greeting["id"])

    item = (await _queue(moderator))[0]
    assert item["snapshot"]["content"] == "Hello there."
    context = item["context"]
    assert context["message"]["content"] == "Hello there." and context["chat_id"] == chat_id
    assert context["chat_owner"] == "bob" and context["character_name"] == "Vex"
    assert "after hi" in [m["content"] for m in context["around"]]

    assert (await _act(moderator, report_id, "remove_message")).status_code == 200
    history = (await bob.get(f"/api/v1/chats/{chat_id}/messages")).json()["items"]
    assert greeting["id"] not in [m["id"] for m in history]
    assert [m["content"] for m in history][:1] == ["after hi"]
    closed = (await _queue(moderator, status="actioned"))[0]
    assert closed["context"]["message"]["removed_at"] is not None
    assert closed["context"]["message"]["content"] == "Hello there."  # kept for the record
    entry = (await _audit(moderator))[0]
    assert (entry["action"], entry["target_kind"], entry["target_id"]) == (
        "remove_message",
        "message",
        greeting["id"],
    )
    assert (await _my_report(bob, report_id))["action"] == "remove_message"


async def test_a_warned_user_sees_the_warning(api: Api) -> None:
    alice = await api.user("alice")
    bob = await api.user("bob")
    moderator = await _staff(api, "mod")
    assert (await alice.get("/api/v1/me")).json()["warnings"] == []
    report_id = await _report(bob, "user", await _id(alice))
    assert (await _act(moderator, report_id, "warn", note="be kind")).status_code == 200
    me = (await alice.get("/api/v1/me")).json()
    assert [(w["reason"], w["note"]) for w in me["warnings"]] == [("hate", "be kind")]
    assert me["suspended_until"] is None
    # A warning for a character goes to its owner.
    character = await _character(alice)
    report_id = await _report(bob, "character", character["id"])
    assert (await _act(moderator, report_id, "warn")).status_code == 200
    assert len((await alice.get("/api/v1/me")).json()["warnings"]) == 2
    assert (await bob.get("/api/v1/me")).json()["warnings"] == []


async def test_a_suspended_user_cannot_log_in_or_send_until_the_time_passes(api: Api) -> None:
    alice = await api.user("alice")
    bob = await api.user("bob")
    moderator = await _staff(api, "mod")
    character = await _character(bob)
    chat = await alice.post("/api/v1/chats", json={"character_id": character["id"]})
    chat_id = chat.json()["id"]
    token = (await alice.post("/api/v1/tokens", json={"name": "t"})).json()["token"]
    report_id = await _report(bob, "user", await _id(alice))

    missing = await _act(moderator, report_id, "suspend")
    assert_problem(missing, 422, "validation_error")
    decided = await _act(moderator, report_id, "suspend", suspend_hours=2)
    assert decided.status_code == 200, decided.text

    send = await alice.put(f"/api/v1/chats/{chat_id}/messages/m1", json={"content": "hi"})
    body = assert_problem(send, 403, "account_suspended")
    assert body["until"] > utcnow().isoformat()
    assert_problem(await api.bearer(token).get("/api/v1/chats"), 403, "account_suspended")
    login = await api.client().post(
        "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}
    )
    assert_problem(login, 403, "account_suspended")
    wrong = await api.client().post(
        "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD + "x"}
    )
    assert_problem(wrong, 401, "invalid_credentials")  # a stranger learns nothing
    # Public pages still answer her as a visitor.
    assert (await alice.get("/api/v1/characters")).status_code == 200
    audit = (await _audit(moderator))[0]
    assert audit["action"] == "suspend" and audit["details"]["hours"] == 2

    async with api.container.database.write() as tx:  # the suspension runs out
        await tx.execute(
            update(users)
            .where(users.c.username == "alice")
            .values(suspended_until=utcnow() - timedelta(seconds=1))
        )
    again = await alice.put(f"/api/v1/chats/{chat_id}/messages/m1", json={"content": "hi"})
    assert again.status_code == 202, again.text
    login = await api.client().post(
        "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}
    )
    assert login.status_code == 200, login.text


async def test_who_may_act_and_on_whom(api: Api) -> None:
    alice = await api.user("alice")
    bob = await api.user("bob")
    moderator = await _staff(api, "mod")
    other_moderator = await _staff(api, "mod2")
    admin = await _staff(api, "boss", "admin")
    report_id = await _report(bob, "user", await _id(alice))

    # A user sees no queue, no audit and decides nothing.
    for response in (
        await bob.get("/api/v1/moderation/queue"),
        await bob.get("/api/v1/moderation/audit"),
        await _act(bob, report_id, "dismiss"),
        await _act(alice, report_id, "dismiss"),
        await bob.post(
            f"/api/v1/moderation/appeals/{report_id}/actions", json={"action": "uphold"}
        ),
    ):
        assert_problem(response, 403, "forbidden")
    assert_problem(await api.client().get("/api/v1/moderation/queue"), 401, "not_authenticated")

    # Nobody decides their own report.
    own = await _report(moderator, "user", await _id(alice))
    assert_problem(await _act(moderator, own, "dismiss"), 403, "own_case")
    # Nobody suspends an admin; only an admin suspends a moderator.
    on_admin = await _report(bob, "user", await _id(admin))
    assert_problem(
        await _act(moderator, on_admin, "suspend", suspend_hours=1), 403, "cannot_suspend"
    )
    on_moderator = await _report(bob, "user", await _id(other_moderator))
    refused = await _act(moderator, on_moderator, "suspend", suspend_hours=1)
    assert_problem(refused, 403, "cannot_suspend")
    # A moderator reported by name cannot suspend themselves through the report.
    on_self = await _report(bob, "user", await _id(moderator))
    assert_problem(await _act(moderator, on_self, "warn"), 403, "own_case")
    assert (await _act(admin, on_moderator, "suspend", suspend_hours=1)).status_code == 200
    assert_problem(await other_moderator.get("/api/v1/me"), 403, "account_suspended")
    # What was refused changed nothing and wrote no audit row.
    assert [e["case_id"] for e in await _audit(admin)] == [on_moderator]
    assert (await admin.get("/api/v1/me")).json()["suspended_until"] is None
    assert {i["id"] for i in await _queue(admin)} == {report_id, own, on_admin, on_self}


async def test_bad_actions_are_refused(api: Api) -> None:
    alice = await api.user("alice")
    bob = await api.user("bob")
    moderator = await _staff(api, "mod")
    character = await _character(alice)
    on_user = await _report(bob, "user", await _id(alice))
    on_character = await _report(bob, "character", character["id"])

    assert_problem(await _act(moderator, on_user, "hide_character"), 422, "action_not_applicable")
    assert_problem(
        await _act(moderator, on_character, "remove_message"), 422, "action_not_applicable"
    )
    for body in (
        {"action": "ban"},
        {"action": "uphold"},
        {},
        {"action": "dismiss", "note": "n" * 2001},
        {"action": "suspend", "suspend_hours": 0},
        {"action": "suspend", "suspend_hours": 100_000},
        {"action": "suspend", "suspend_hours": "soon"},
        {"action": "dismiss", "extra": True},
    ):
        response = await moderator.post(f"/api/v1/moderation/reports/{on_user}/actions", json=body)
        assert_problem(response, 422, "validation_error")
    assert_problem(await _act(moderator, "01HZZZZZZZZZZZZZZZZZZZZZZZ", "dismiss"), 404, "not_found")
    unknown_appeal = await moderator.post(
        "/api/v1/moderation/appeals/nope/actions", json={"action": "uphold"}
    )
    assert_problem(unknown_appeal, 404, "not_found")
    for params in ({"status": "closed"}, {"kind": "ticket"}, {"limit": 0}, {"limit": 101}):
        response = await moderator.get("/api/v1/moderation/queue", params=params)
        assert_problem(response, 422, "validation_error")
    assert await _audit(moderator) == []
    assert len(await _queue(moderator)) == 2


async def test_an_appeal_reaches_the_queue_and_its_decision_reaches_the_user(api: Api) -> None:
    alice = await api.user("alice")
    bob = await api.user("bob")
    moderator = await _staff(api, "mod")
    character = await _character(alice)
    chat = await bob.post("/api/v1/chats", json={"character_id": character["id"]})
    greeting = (await bob.get(f"/api/v1/chats/{chat.json()['id']}/messages")).json()["items"][0]
    by_text = await bob.post(
        "/api/v1/appeals", json={"category": "violence", "content": "a duel", "note": "a story"}
    )
    by_message = await bob.post(
        "/api/v1/appeals", json={"category": "sexual", "message_id": greeting["id"]}
    )
    report_id = await _report(bob, "character", character["id"])

    queued = await _queue(moderator)
    assert [i["id"] for i in queued] == [by_text.json()["id"], by_message.json()["id"], report_id]
    text_item, message_item = queued[0], queued[1]
    assert text_item["kind"] == "appeal" and text_item["content"] == "a duel"
    assert text_item["reason"] == "violence" and text_item["target_kind"] == "content"
    assert message_item["target_kind"] == "message"
    assert message_item["context"]["message"]["content"] == "Hello there."
    assert [i["id"] for i in await _queue(moderator, kind="appeal")] == [
        by_text.json()["id"],
        by_message.json()["id"],
    ]
    page = await moderator.get("/api/v1/moderation/queue", params={"limit": 2})
    assert page.json()["has_more"] is True
    rest = await _queue(moderator, after=page.json()["items"][-1]["id"])
    assert [i["id"] for i in rest] == [report_id]

    path = f"/api/v1/moderation/appeals/{by_text.json()['id']}/actions"
    overturned = await moderator.post(path, json={"action": "overturn", "note": "fiction"})
    assert overturned.status_code == 200, overturned.text
    assert overturned.json()["status"] == "actioned"
    assert_problem(await moderator.post(path, json={"action": "uphold"}), 409, "case_closed")
    bad = await moderator.post(path, json={"action": "dismiss"})
    assert_problem(bad, 422, "validation_error")
    upheld = await moderator.post(
        f"/api/v1/moderation/appeals/{by_message.json()['id']}/actions", json={"action": "uphold"}
    )
    assert upheld.json()["status"] == "dismissed"

    appeals = {a["id"]: a for a in (await bob.get("/api/v1/reports/mine")).json()["appeals"]}
    assert appeals[by_text.json()["id"]]["action"] == "overturn"
    assert appeals[by_message.json()["id"]]["action"] == "uphold"
    audit = await _audit(moderator)
    assert [(e["action"], e["case_kind"]) for e in audit] == [
        ("uphold", "appeal"),
        ("overturn", "appeal"),
    ]
    assert audit[0]["target_kind"] == "message" and audit[0]["target_id"] == greeting["id"]
    # An appeal's own author cannot decide it, even as a moderator.
    own = await moderator.post("/api/v1/appeals", json={"category": "hate", "content": "x"})
    response = await moderator.post(
        f"/api/v1/moderation/appeals/{own.json()['id']}/actions", json={"action": "overturn"}
    )
    assert_problem(response, 403, "own_case")
