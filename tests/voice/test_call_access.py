"""Who may call a chat, and what a call refuses (the authorization matrix covers HTTP
routes only: the WebSocket is checked here). An error before the call starts is an
`error` frame with the problem, then the close code 4000 + its HTTP status."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from calling import CallClient, Site, site, speech

from personae.settings import Settings


async def _refused(call: CallClient, code: str, close_code: int) -> None:
    error = await call.wait_for("error")
    assert error.data["problem"]["code"] == code, error.data
    assert await call.wait_closed() == close_code
    assert not call.of_type("ready")


async def _refusal(server: Site, chat_id: str, code: str, close_code: int, **options: Any) -> None:
    async with server.call(chat_id, **options) as call:
        await _refused(call, code, close_code)


async def test_only_the_chats_owner_may_call_it(voice_settings: Callable[..., Settings]) -> None:
    async with site(voice_settings) as server:
        owner, other = await server.user(), await server.user()
        chat_id = await server.chat(owner)
        await _refusal(server, chat_id, "not_authenticated", 4401, headers={})
        await _refusal(server, chat_id, "not_found", 4404, client=other)
        await _refusal(server, "no-such-chat", "not_found", 4404, client=owner)
        # A session cookie sent from another site's page (cross-site WebSocket hijacking).
        cookie = "; ".join(f"{name}={value}" for name, value in owner.cookies.items())
        for origin in ("http://evil.example", None):
            headers = {"Cookie": cookie} | ({"Origin": origin} if origin else {})
            await _refusal(server, chat_id, "csrf_failed", 4403, headers=headers)
        # The owner, by cookie from this site or by an API token.
        async with server.call(chat_id, client=owner) as call:
            await call.wait_for("ready")
        created = await owner.post("/api/v1/tokens", json={"name": "phone"})
        token = created.json()["token"]
        async with server.call(chat_id, headers={"Authorization": f"Bearer {token}"}) as call:
            await call.wait_for("ready")
        bad_token = {"Authorization": "Bearer not-a-token"}
        await _refusal(server, chat_id, "not_authenticated", 4401, headers=bad_token)
        for client in (owner, other):
            await client.aclose()


async def test_rooms_cannot_be_called(voice_settings: Callable[..., Settings]) -> None:
    async with site(voice_settings) as server:
        owner = await server.user()
        character = await owner.post("/api/v1/characters", json={"name": "Ada"})
        room = await owner.post("/api/v1/rooms", json={"character_ids": [character.json()["id"]]})
        assert room.status_code == 201, room.text
        await _refusal(server, room.json()["id"], "invalid_state", 4409, client=owner)
        await owner.aclose()


async def test_without_voice_a_call_is_refused(voice_settings: Callable[..., Settings]) -> None:
    async with site(lambda **o: voice_settings(voice="off", **o)) as server:
        owner = await server.user()
        chat_id = await server.chat(owner)
        await _refusal(server, chat_id, "voice_not_installed", 4501, client=owner)
        await owner.aclose()


async def test_bad_frames_are_refused(voice_settings: Callable[..., Settings]) -> None:
    async with site(voice_settings) as server:
        owner = await server.user()
        chat_id = await server.chat(owner)
        for start in (
            {"type": "hello"},
            {"type": "start", "sample_rate": 4000},
            {"type": "start", "sample_rate": "16000"},
            {"type": "start", "sample_rate_out": 96_000},
        ):
            await _refusal(server, chat_id, "validation_error", 4422, client=owner, start=start)
        async with server.call(chat_id, client=owner) as call:
            await call.wait_for("listening")
            await call.socket.send("not json")
            await call.send({"type": "dance"})
            errors = [await call.wait_for("error", count=n) for n in (1, 2)]
            assert {e.data["problem"]["code"] for e in errors} == {"validation_error"}
            # Audio frames hold at most 100 ms: a bigger one ends the call.
            await call.socket.send(b"\0\0" * 1601)
            assert (await call.wait_for("error", count=3)).data["problem"]["code"] == (
                "validation_error"
            )
            assert await call.wait_closed() == 4422
        await owner.aclose()


async def test_a_second_call_to_the_same_chat_takes_over(
    voice_settings: Callable[..., Settings],
) -> None:
    async with site(voice_settings) as server:
        owner = await server.user()
        chat_id = await server.chat(owner)
        async with server.call(chat_id, client=owner) as first:
            await first.wait_for("ready")
            async with server.call(chat_id, client=owner) as second:
                await second.wait_for("ready")
                replaced = await first.wait_for("error")
                assert replaced.data["problem"]["code"] == "call_replaced"
                assert await first.wait_closed() == 4409
                # The second call hears as calls do.
                await second.say(speech("Hello there"))
                await second.wait_for("speech_started")
        await owner.aclose()


async def test_the_start_frame_must_come_in_time(
    voice_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    from personae.api.routes import calls

    monkeypatch.setattr(calls, "START_TIMEOUT_S", 0.3)
    async with site(voice_settings) as server:
        owner = await server.user()
        chat_id = await server.chat(owner)
        await _refusal(server, chat_id, "request_timeout", 4408, client=owner, send_start=False)
        await owner.aclose()
