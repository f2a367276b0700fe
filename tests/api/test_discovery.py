"""Discovery and creators: trending over a recent window, ratings per character, and
each creator's own figures (chats, messages, average rating) for nobody else."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import update

from conftest import Api, assert_problem
from personae.storage.repos import characters as characters_repo
from personae.storage.repos import chats as chats_repo
from personae.storage.tables import messages
from personae.storage.types import utcnow


async def _character(client: httpx.AsyncClient, name: str, **fields: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/characters", json={"name": name, "first_message": "Hello.", **fields}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _user_messages(
    api: Api, owner_id: str, character_id: str, count: int, days_ago: float
) -> None:
    """`count` messages people sent to the character `days_ago` days ago (arranged in the
    database: sending for real would need a model to answer)."""
    async with api.container.database.write() as tx:
        chat_id = await chats_repo.insert_chat(
            tx, owner_id=owner_id, character_id=character_id, title="t", persona_name="P",
            persona_description="",
        )  # fmt: skip
        await characters_repo.add_chat_count(tx, character_id, 1)
        for position in range(count):
            message = await chats_repo.insert_message(
                tx, chat_id=chat_id, role="user", author_id=owner_id, position=position,
                content="hi", status="complete",
            )  # fmt: skip
            await tx.execute(
                update(messages)
                .where(messages.c.id == message.id)
                .values(created_at=utcnow() - timedelta(days=days_ago))
            )


async def _names(client: httpx.AsyncClient, sort: str) -> list[str]:
    response = await client.get(f"/api/v1/characters?sort={sort}")
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()["items"]]


async def test_trending_ranks_by_recent_messages_not_all_time(api: Api) -> None:
    alice = await api.user("alice")
    me = (await alice.get("/api/v1/me")).json()["id"]
    old_hit = await _character(alice, "Old hit")
    rising = await _character(alice, "Rising")
    await _character(alice, "Quiet")
    for _ in range(3):  # many chats and messages, all a month ago
        await _user_messages(api, me, old_hit["id"], 10, days_ago=30)
    await _user_messages(api, me, rising["id"], 3, days_ago=1)
    assert await _names(alice, "popular") == ["Old hit", "Rising", "Quiet"]
    assert await _names(alice, "trending") == ["Rising", "Old hit", "Quiet"]


async def test_the_trending_window_is_a_setting(make_settings: Any) -> None:
    from personae.app import create_app

    app = create_app(make_settings(trending_window_days=60))
    async with app.router.lifespan_context(app):
        api = Api(app)
        alice = await api.user("alice")
        me = (await alice.get("/api/v1/me")).json()["id"]
        old_hit = await _character(alice, "Old hit")
        rising = await _character(alice, "Rising")
        await _user_messages(api, me, old_hit["id"], 10, days_ago=30)
        await _user_messages(api, me, rising["id"], 3, days_ago=1)
        assert await _names(alice, "trending") == ["Old hit", "Rising"]
        await api.aclose()


async def _rate_greeting(client: httpx.AsyncClient, character_id: str, stars: int) -> str:
    chat = (await client.post("/api/v1/chats", json={"character_id": character_id})).json()
    listed = (await client.get(f"/api/v1/chats/{chat['id']}/messages")).json()
    greeting = next(m for m in listed["items"] if m["role"] == "assistant")
    rated = await client.put(f"/api/v1/messages/{greeting['id']}/rating", json={"stars": stars})
    assert rated.status_code == 200, rated.text
    return str(greeting["id"])


async def test_ratings_are_aggregated_per_character_and_sortable(api: Api) -> None:
    alice, bob = await api.user("alice"), await api.user("bob")
    liked = await _character(alice, "Liked")
    meh = await _character(alice, "Meh")
    unrated = await _character(alice, "Unrated")
    assert unrated["rating_average"] is None and unrated["rating_count"] == 0
    await _rate_greeting(bob, liked["id"], 4)
    await _rate_greeting(alice, liked["id"], 3)
    message_id = await _rate_greeting(bob, meh["id"], 3)
    # Rating again changes the stars, not the count.
    await bob.put(f"/api/v1/messages/{message_id}/rating", json={"stars": 1})
    shown = (await bob.get(f"/api/v1/characters/{liked['id']}")).json()
    assert (shown["rating_average"], shown["rating_count"]) == (3.5, 2)
    shown = (await bob.get(f"/api/v1/characters/{meh['id']}")).json()
    assert (shown["rating_average"], shown["rating_count"]) == (1.0, 1)
    # With few ratings, an average is pulled towards the middle (2.5 stars).
    assert await _names(bob, "rated") == ["Liked", "Unrated", "Meh"]


async def test_creators_see_their_own_figures_and_nobody_elses(api: Api) -> None:
    alice, bob = await api.user("alice"), await api.user("bob")
    mine = await _character(alice, "Mine", visibility="private")
    public = await _character(alice, "Public")
    await _rate_greeting(bob, public["id"], 4)
    await _rate_greeting(bob, public["id"], 2)
    await _rate_greeting(alice, mine["id"], 3)

    response = await alice.get("/api/v1/me/characters/stats")
    assert response.status_code == 200, response.text
    stats = {item["name"]: item for item in response.json()["items"]}
    assert set(stats) == {"Mine", "Public"}
    assert stats["Public"]["chat_count"] == 2
    assert stats["Public"]["message_count"] == 2  # one greeting in each chat
    assert (stats["Public"]["rating_average"], stats["Public"]["rating_count"]) == (3.0, 2)
    assert stats["Mine"]["visibility"] == "private" and stats["Mine"]["chat_count"] == 1

    # Bob, who chatted with them, sees only his own characters' figures (none).
    assert (await bob.get("/api/v1/me/characters/stats")).json()["items"] == []
    assert_problem(await api.client().get("/api/v1/me/characters/stats"), 401, "not_authenticated")
    # The public face of a character carries no usage figures beyond its chats and stars.
    shown = (await bob.get(f"/api/v1/characters/{public['id']}")).json()
    assert "message_count" not in shown


async def test_a_deleted_character_leaves_the_stats(api: Api) -> None:
    alice = await api.user("alice")
    gone = await _character(alice, "Gone")
    assert (await alice.delete(f"/api/v1/characters/{gone['id']}")).status_code == 204
    assert (await alice.get("/api/v1/me/characters/stats")).json()["items"] == []
