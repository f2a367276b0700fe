"""How a call ends, and what it holds (review of #20, findings 6, 7, 8, 11 and 12): the
calls a user may have open, idle and length limits, the sign-in checked again at each
turn, the audio kept waiting, a listening or a turn that fails unexpectedly, a voice
activity detector that cannot load, and the server's stop. Faults are SIMULATED by
patching one function to raise; everything else is real (uvicorn, Silero VAD, Whisper
tiny.en, Piper)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from calling import CallClient, site, speech
from recordings import silence

from personae.services.call_io import AudioInbox, CallStart
from personae.services.chats import ChatService
from personae.services.transcription import TranscriptionService
from personae.settings import Settings
from personae.voice.base import Transcript
from personae.voice.vad import SileroVad, TurnDetector

ASKED = "Please tell me a story about the old lighthouse keeper"


async def _ended(call: CallClient, code: str, close_code: int) -> dict[str, Any]:
    """The call ends with an `error` frame of `code`, then the close code."""
    error = await call.wait_for("error", where=lambda f: f.data["problem"]["code"] == code)
    assert await call.wait_closed() == close_code
    return dict(error.data["problem"])


async def _messages(
    client: Any, chat_id: str, headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    answer = await client.get(f"/api/v1/chats/{chat_id}/messages", headers=headers)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


async def test_a_user_may_have_only_so_many_calls_open(
    voice_settings: Callable[..., Settings],
) -> None:
    async with site(lambda **o: voice_settings(call_max_per_user=1, **o)) as server:
        owner = await server.user()
        first_chat, second_chat = await server.chat(owner), await server.chat(owner)
        async with server.call(first_chat, client=owner) as first:
            await first.wait_for("ready")
            async with server.call(second_chat, client=owner) as second:
                problem = await _ended(second, "too_many_calls", 4429)
                assert problem["status"] == 429
                assert not second.of_type("ready")
            # Calling the same chat again is not one more call: it takes over.
            async with server.call(first_chat, client=owner) as again:
                await again.wait_for("ready")
                await _ended(first, "call_replaced", 4409)
        await owner.aclose()


async def test_a_call_with_nothing_said_ends_when_idle(
    voice_settings: Callable[..., Settings],
) -> None:
    async with site(lambda **o: voice_settings(call_idle_timeout_s=1.0, **o)) as server:
        owner = await server.user()
        chat_id = await server.chat(owner)
        async with server.call(chat_id, client=owner) as call:
            await call.wait_for("listening")
            await call.say(silence(0.5))  # audio without speech is not talking
            problem = await _ended(call, "call_timed_out", 4408)
            assert problem["limit"] == "idle"
        await owner.aclose()


async def test_a_call_ends_at_its_longest_length(
    voice_settings: Callable[..., Settings],
) -> None:
    settings = {"call_max_duration_s": 1.0, "call_idle_timeout_s": 600.0}
    async with site(lambda **o: voice_settings(**settings, **o)) as server:
        owner = await server.user()
        chat_id = await server.chat(owner)
        async with server.call(chat_id, client=owner) as call:
            await call.wait_for("ready")
            problem = await _ended(call, "call_timed_out", 4408)
            assert problem["limit"] == "length"
        await owner.aclose()


async def test_signing_out_ends_the_call_at_the_next_turn(
    voice_settings: Callable[..., Settings],
) -> None:
    async with site(voice_settings) as server:
        owner = await server.user()
        chat_id = await server.chat(owner)
        token = (await owner.post("/api/v1/tokens", json={"name": "reader"})).json()["token"]
        async with server.call(chat_id, client=owner) as call:
            await call.wait_for("listening")
            signed_out = await owner.post("/api/v1/auth/logout")
            assert signed_out.status_code == 204, signed_out.text
            await call.say(speech(ASKED))
            await _ended(call, "not_authenticated", 4401)
            assert not call.of_type("transcript")
        # Nothing was sent in the name of a session that was closed.
        by_token = {"Authorization": f"Bearer {token}"}
        assert not [m for m in await _messages(owner, chat_id, by_token) if m["role"] == "user"]
        await owner.aclose()


async def test_the_audio_waiting_to_be_heard_is_bounded_in_seconds() -> None:
    """Frames of up to 100 ms at up to 48 kHz: the inbox holds 5 s whatever the rate,
    and a put waiting for room returns once the call is over."""
    start = CallStart(sample_rate=48_000)
    assert start.inbox_bytes == 48_000 * 2 * 5
    inbox = AudioInbox(start.inbox_bytes)
    frame = b"\0" * start.frame_max_bytes
    for _ in range(50):  # 50 frames of 100 ms: full
        await inbox.put(frame)
    assert inbox.size == start.inbox_bytes
    waiting = asyncio.create_task(inbox.put(frame))
    await asyncio.sleep(0)
    assert not waiting.done()
    assert len(await inbox.take(start.sample_rate * 2)) == 96_000  # one second judged
    await asyncio.wait_for(waiting, 5.0)  # room again
    blocked = [asyncio.create_task(inbox.put(frame)) for _ in range(12)]
    await asyncio.sleep(0)
    assert sum(task.done() for task in blocked) == 9  # 41 frames held: room for 9
    await inbox.close()
    await asyncio.wait_for(asyncio.gather(*blocked), 5.0)
    assert await inbox.take(1) == b""


async def test_a_call_whose_listening_fails_ends_with_an_error(
    voice_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_feed(self: TurnDetector, pcm: bytes) -> list[Any]:
        raise RuntimeError("SIMULATED fault in voice activity detection")

    monkeypatch.setattr(TurnDetector, "feed", failing_feed)
    async with site(lambda **o: voice_settings(call_max_per_user=1, **o)) as server:
        owner = await server.user()
        chat_id, other_chat = await server.chat(owner), await server.chat(owner)
        async with server.call(chat_id, client=owner) as call:
            await call.wait_for("listening")
            await call.say(silence(1.0))
            problem = await _ended(call, "internal_error", 4500)
            assert problem["retryable"] is True
            # The call is over on the server too: it does not count against the limit.
            async with server.call(other_chat, client=owner) as other:
                await other.wait_for("ready")
        await owner.aclose()


async def test_a_turn_that_fails_unexpectedly_is_told_and_the_call_goes_on(
    voice_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_send = ChatService.send
    failures = [RuntimeError("SIMULATED database fault")]

    async def send_failing_once(self: ChatService, *args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return await real_send(self, *args, **kwargs)

    monkeypatch.setattr(ChatService, "send", send_failing_once)
    async with site(voice_settings) as server:
        owner = await server.user()
        chat_id = await server.chat(owner)
        await server.script("It was a calm night at sea.")
        async with server.call(chat_id, client=owner) as call:
            await call.say(speech(ASKED))
            error = await call.wait_for("error")
            assert error.data["problem"]["code"] == "internal_error"
            await call.wait_for("listening", count=2)
            # The next turn is heard and sent as usual.
            await call.say(speech(ASKED))
            await call.wait_for("transcript")
            await call.wait_for("reply_done")
        await owner.aclose()


async def test_a_transcription_engine_failure_is_told_as_such(
    voice_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with site(voice_settings) as server:
        engines = server.app.state.container.voice_engines
        transcriber = type(engines.transcriber())

        async def failing(self: Any, audio: Any, *, language: str | None) -> Transcript:
            raise RuntimeError("SIMULATED fault in the transcription engine")

        monkeypatch.setattr(transcriber, "transcribe", failing)
        owner = await server.user()
        chat_id = await server.chat(owner)
        async with server.call(chat_id, client=owner) as call:
            await call.say(speech(ASKED))
            error = await call.wait_for("error")
            assert error.data["problem"]["code"] == "speech_engine_failed"
            await call.wait_for("listening", count=2)
            assert call.closed_with is None
        await owner.aclose()


async def test_a_detector_that_cannot_load_refuses_the_call_with_a_reason(
    voice_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_load() -> SileroVad:
        raise RuntimeError("SIMULATED: the ONNX runtime cannot load the model")

    monkeypatch.setattr(SileroVad, "load", staticmethod(failing_load))
    async with site(voice_settings) as server:
        owner = await server.user()
        chat_id = await server.chat(owner)
        async with server.call(chat_id, client=owner) as call:
            await _ended(call, "speech_engine_failed", 4502)
            assert not call.of_type("ready")
        await owner.aclose()


async def test_at_the_servers_stop_a_call_ends_and_a_turn_heard_is_still_sent(
    voice_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_transcribe = TranscriptionService.transcribe
    entered, release = asyncio.Event(), asyncio.Event()

    async def held_transcribe(self: TranscriptionService, *args: Any, **kwargs: Any) -> Any:
        entered.set()
        await release.wait()
        return await real_transcribe(self, *args, **kwargs)

    monkeypatch.setattr(TranscriptionService, "transcribe", held_transcribe)
    async with site(voice_settings) as server:
        container = server.app.state.container
        owner = await server.user()
        chat_id = await server.chat(owner)
        async with server.call(chat_id, client=owner) as call:
            await call.say(speech(ASKED))
            await entered.wait()  # the turn is heard and being transcribed
            container.stopping.set()  # what begin_shutdown does at SIGTERM
            problem = await _ended(call, "shutting_down", 4503)
            assert problem["retryable"] is True
        # The application's shutdown gives the turn its grace instead of cancelling it.
        closing = asyncio.create_task(container.calls.aclose(30.0))
        await asyncio.sleep(0)  # the shutdown has begun while the turn is transcribed
        release.set()
        await asyncio.wait_for(closing, 60.0)
        said = [m for m in await _messages(owner, chat_id) if m["role"] == "user"]
        assert len(said) == 1 and said[0]["client_id"].startswith("call-"), said
        assert "lighthouse" in said[0]["content"].lower()
        await owner.aclose()
