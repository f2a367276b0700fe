"""Well-being: every chat says its character is an AI; the time-spent notice comes due
after PERSONAE_WELLBEING_SESSION_MINUTES of chatting, measured from what the user sends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from conftest import Api
from personae.app import create_app
from personae.errors import ConfigurationError
from personae.settings import Settings
from personae.storage.tables import messages
from personae.storage.types import utcnow


@pytest.fixture
async def short_api(make_settings: Callable[..., Settings]) -> AsyncIterator[Api]:
    """An app whose notice comes after 20 minutes of chatting (gaps of 30 end a session)."""
    app = create_app(make_settings(wellbeing_session_minutes=20))
    async with app.router.lifespan_context(app):
        helper = Api(app)
        yield helper
        await helper.aclose()


async def _chat(client: httpx.AsyncClient) -> dict[str, Any]:
    character = await client.post("/api/v1/characters", json={"name": "Mira"})
    assert character.status_code == 201, character.text
    chat = await client.post("/api/v1/chats", json={"character_id": character.json()["id"]})
    assert chat.status_code == 201, chat.text
    return dict(chat.json())


async def _send(client: httpx.AsyncClient, chat_id: str, client_id: str) -> str:
    sent = await client.put(
        f"/api/v1/chats/{chat_id}/messages/{client_id}", json={"content": "Hello there"}
    )
    assert sent.status_code == 202, sent.text
    return str(sent.json()["message"]["id"])


async def _sent_at(api: Api, message_id: str, when: datetime) -> None:
    """Move a stored message back in time (the test cannot wait an hour)."""
    async with api.container.database.write() as tx:
        await tx.execute(
            update(messages).where(messages.c.id == message_id).values(created_at=when)
        )


async def _status(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/api/v1/me/wellbeing")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_every_chat_carries_the_ai_notice(api: Api) -> None:
    client = await api.user("ada")
    chat = await _chat(client)
    for body in (
        chat,
        (await client.get(f"/api/v1/chats/{chat['id']}")).json(),
        (await client.get("/api/v1/chats")).json()["items"][0],
    ):
        assert "AI" in body["ai_notice"] and "not a real person" in body["ai_notice"]


async def test_no_notice_without_chatting_and_the_wellbeing_status_needs_a_login(
    short_api: Api,
) -> None:
    assert (await short_api.client().get("/api/v1/me/wellbeing")).status_code == 401
    client = await short_api.user("bea")
    status = await _status(client)
    assert status == {
        "session_minutes": 0.0,
        "session_started_at": None,
        "notice_due": False,
        "notice": None,
        "threshold_minutes": 20.0,
    }


async def test_the_notice_is_due_after_the_session_length_and_not_before(short_api: Api) -> None:
    client = await short_api.user("cal")
    chat = await _chat(client)
    now = utcnow()
    first = await _send(client, chat["id"], "m1")
    second = await _send(client, chat["id"], "m2")
    third = await _send(client, chat["id"], "m3")
    await _sent_at(short_api, first, now - timedelta(minutes=15))
    await _sent_at(short_api, second, now - timedelta(minutes=5))
    status = await _status(client)
    assert status["notice_due"] is False and status["notice"] is None
    assert 14.5 <= status["session_minutes"] < 20

    # Gaps of at most 30 minutes make one session: now 45 minutes long.
    await _sent_at(short_api, first, now - timedelta(minutes=45))
    await _sent_at(short_api, second, now - timedelta(minutes=20))
    status = await _status(client)
    assert status["notice_due"] is True
    assert 44.5 <= status["session_minutes"] < 50
    assert "time for a break?" in status["notice"]

    # A gap over 30 minutes ends a session: the earlier one does not count.
    await _sent_at(short_api, first, now - timedelta(minutes=80))
    await _sent_at(short_api, second, now - timedelta(minutes=45))
    await _sent_at(short_api, third, now - timedelta(minutes=10))
    status = await _status(client)
    assert status["notice_due"] is False
    assert 9.5 <= status["session_minutes"] < 15


async def test_a_session_ends_when_the_user_stops_and_a_dismissed_notice_comes_back_later(
    short_api: Api,
) -> None:
    client = await short_api.user("dex")
    chat = await _chat(client)
    now = utcnow()
    message = await _send(client, chat["id"], "m1")
    await _sent_at(short_api, message, now - timedelta(minutes=25))
    # The last message was 25 minutes ago: still the session (the gap is 30).
    assert (await _status(client))["notice_due"] is True

    wellbeing = short_api.container.wellbeing
    real_clock = wellbeing.clock
    dismissed = await client.post("/api/v1/me/wellbeing/dismiss")
    assert dismissed.status_code == 200, dismissed.text
    assert dismissed.json()["notice_due"] is False
    assert (await _status(client))["notice_due"] is False

    try:
        wellbeing.clock = lambda: real_clock() + timedelta(minutes=3)
        assert (await _status(client))["notice_due"] is False  # 28 minutes in, 3 since
        await _sent_at(short_api, message, now - timedelta(minutes=5))
        wellbeing.clock = lambda: real_clock() + timedelta(minutes=21)
        status = await _status(client)  # still chatting 21 minutes after the dismissal
        assert status["notice_due"] is True
        wellbeing.clock = lambda: real_clock() + timedelta(minutes=40)
        status = await _status(client)  # 45 minutes without a message: the session ended
        assert status["notice_due"] is False and status["session_minutes"] == 0
    finally:
        wellbeing.clock = real_clock


async def test_other_users_messages_do_not_count(short_api: Api) -> None:
    busy = await short_api.user("eve")
    idle = await short_api.user("fay")
    chat = await _chat(busy)
    message = await _send(busy, chat["id"], "m1")
    await _sent_at(short_api, message, utcnow() - timedelta(minutes=25))
    assert (await _status(busy))["notice_due"] is True
    assert (await _status(idle))["session_minutes"] == 0


def test_the_session_length_takes_fractions_and_refuses_nonsense(
    make_settings: Callable[..., Settings],
) -> None:
    assert make_settings(wellbeing_session_minutes=0.5).wellbeing_session_minutes == 0.5
    assert make_settings().wellbeing_session_minutes == 60
    for bad in (0, -1, 24 * 60 + 1):
        with pytest.raises((ValueError, ConfigurationError)):
            make_settings(wellbeing_session_minutes=bad)
