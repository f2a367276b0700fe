"""Read-aloud of replies with the real Piper voice: the speech follows a reply as it
streams (the reply from the SIMULATED chat backend, slowed down), arrives before the
reply ends, is announced on the chat's stream in order, and is cached per message."""

from __future__ import annotations

import time
import wave
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import httpx
from speaking import chat_with, events_until, named, script, send, speaking_app

from conftest import assert_problem, serve_app, wait_for_reply
from personae.services.voice_slots import SYNTHESIS
from personae.settings import Settings

REPLY = (
    "Hello there, traveller. The tea is warm and the rain taps on the window. "
    "*She sets a cup down beside you.* Sit by the fire and tell me about the road. "
    "Did you pass the old mill on the river path? The lanterns there glow at dusk, "
    "and the miller tells stories to anyone who stops. I would love to hear yours."
)
SENTENCES = [
    "Hello there, traveller.",
    "The tea is warm and the rain taps on the window.",
    "Sit by the fire and tell me about the road.",
    "Did you pass the old mill on the river path?",
    "The lanterns there glow at dusk, and the miller tells stories to anyone who stops.",
    "I would love to hear yours.",
]
PIPER_RATE = 22_050


def _served(api) -> int:  # type: ignore[no-untyped-def]
    """Syntheses done by this app so far."""
    return next(
        line.served for line in api.container.voices.slots.state() if line.kind == SYNTHESIS
    )


def _wav_seconds(data: bytes, rate: int = PIPER_RATE) -> float:
    with wave.open(BytesIO(data)) as reader:
        assert (reader.getnchannels(), reader.getsampwidth(), reader.getframerate()) == (1, 2, rate)
        return reader.getnframes() / rate


async def test_a_reply_is_spoken_while_it_streams_and_the_first_audio_comes_first(
    make_settings: Callable[..., Settings], voice_models_dir: Path
) -> None:
    # 55 words at 6 a second: the reply takes about 9 s to write.
    async with speaking_app(make_settings, voice_models_dir, tokens_per_second=6.0) as (api, sim):
        user = await api.user()
        chat_id = await chat_with(user)
        await script(sim, REPLY)
        reply_id = (await send(user, chat_id, "m1", "Hello!"))["reply"]["id"]
        cookies = "; ".join(f"{name}={value}" for name, value in user.cookies.items())
        async with (
            serve_app(api.app, lifespan="off") as url,
            httpx.AsyncClient(base_url=url, timeout=120) as http,
        ):
            started = time.monotonic()
            first_audio_at: float | None = None
            status_at_first_audio = None
            body = b""
            async with http.stream(
                "GET", f"/api/v1/messages/{reply_id}/speech", headers={"Cookie": cookies}
            ) as response:
                assert response.status_code == 200
                assert response.headers["content-type"] == "audio/wav"
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if first_audio_at is None and len(body) > 44:
                        first_audio_at = time.monotonic() - started
                        messages = await user.get(f"/api/v1/chats/{chat_id}/messages")
                        status_at_first_audio = next(
                            m["status"] for m in messages.json()["items"] if m["id"] == reply_id
                        )
        assert first_audio_at is not None
        # The first sentence was heard while the reply was still being written.
        assert status_at_first_audio in {"queued", "generating"}, status_at_first_audio
        assert first_audio_at < 8.0, first_audio_at
        # A WAV header of unknown length, then 16-bit mono PCM at Piper's rate.
        assert body[:4] == b"RIFF" and body[8:12] == b"WAVE"
        assert int.from_bytes(body[24:28], "little") == PIPER_RATE
        spoken_s = (len(body) - 44) / 2 / PIPER_RATE
        assert 10.0 < spoken_s < 40.0, spoken_s  # six sentences, about 55 words
        final = await wait_for_reply(user, chat_id, reply_id)
        assert final["status"] == "complete"

        events = await events_until(
            api, chat_id, lambda seen: bool(named(seen, "speech_done", reply_id))
        )
        speech = named(events, "speech", reply_id)
        assert [e.data["index"] for e in speech] == list(range(len(SENTENCES)))
        assert [e.data["text"] for e in speech] == SENTENCES  # the action is not spoken
        assert all(e.data["sample_rate"] == PIPER_RATE for e in speech)
        assert speech[0].data["url"] == f"/api/v1/messages/{reply_id}/speech/0"
        done = named(events, "speech_done", reply_id)[0]
        assert done.data["clips"] == len(SENTENCES)
        # In order on the stream: the first audio before the reply's end, done last.
        ended = [
            e for e in named(events, "reply_state", reply_id) if e.data["status"] == "complete"
        ]
        ids = [e.id for e in events]
        assert ids.index(speech[0].id) < ids.index(ended[0].id)
        assert ids.index(speech[-1].id) < ids.index(done.id)
        assert "voice_key" in done.data and done.data["voice_key"].startswith("piper/")

        # Cached: asked again, it comes from the database without any synthesis.
        served = _served(api)
        again = await user.get(f"/api/v1/messages/{reply_id}/speech")
        assert again.status_code == 200
        assert again.content == body
        state = await user.post(f"/api/v1/messages/{reply_id}/speech")
        assert state.status_code == 202
        assert state.json()["complete"] is True
        assert [clip["text"] for clip in state.json()["clips"]] == SENTENCES
        assert _served(api) == served


async def test_speech_of_a_finished_reply_its_clips_and_their_end_with_an_edit(
    make_settings: Callable[..., Settings], voice_models_dir: Path
) -> None:
    async with speaking_app(make_settings, voice_models_dir) as (api, sim):
        user = await api.user()
        chat_id = await chat_with(user)
        await script(sim, "Good evening. Rain again!")
        sent = await send(user, chat_id, "m1", "Hi")
        reply_id = sent["reply"]["id"]
        await wait_for_reply(user, chat_id, reply_id)
        started = await user.post(f"/api/v1/messages/{reply_id}/speech")
        assert started.status_code == 202, started.text
        assert started.json()["message_id"] == reply_id
        # Joining a running read-aloud starts no second one.
        joined = await user.post(f"/api/v1/messages/{reply_id}/speech")
        assert joined.status_code == 202
        await events_until(api, chat_id, lambda seen: bool(named(seen, "speech_done", reply_id)))
        assert _served(api) == 2  # two sentences, each spoken once
        state = (await user.post(f"/api/v1/messages/{reply_id}/speech")).json()
        assert state["complete"] is True
        assert [clip["text"] for clip in state["clips"]] == ["Good evening.", "Rain again!"]
        clip = await user.get(state["clips"][1]["url"])
        assert clip.status_code == 200 and clip.headers["content-type"] == "audio/wav"
        seconds = _wav_seconds(clip.content)
        assert 0.4 < seconds < 4.0
        assert abs(seconds * 1000 - state["clips"][1]["duration_ms"]) < 5
        assert_problem(
            await user.get(f"/api/v1/messages/{reply_id}/speech/2"), 404, "speech_not_ready"
        )
        # An edited reply's audio is dropped with its old text.
        edited = await user.patch(f"/api/v1/messages/{reply_id}", json={"content": "Bye now."})
        assert edited.status_code == 200, edited.text
        assert_problem(
            await user.get(f"/api/v1/messages/{reply_id}/speech/0"), 404, "speech_not_ready"
        )
        again = (await user.post(f"/api/v1/messages/{reply_id}/speech")).json()
        assert again["complete"] is False
        events = await events_until(
            api, chat_id, lambda seen: len(named(seen, "speech_done", reply_id)) == 2
        )
        assert [e.data["text"] for e in named(events, "speech", reply_id)][-1] == "Bye now."


async def test_only_replies_are_read_and_only_to_who_may_read_them(
    make_settings: Callable[..., Settings], voice_models_dir: Path
) -> None:
    async with speaking_app(make_settings, voice_models_dir) as (api, _sim):
        owner, other = await api.user(), await api.user()
        chat_id = await chat_with(owner)
        sent = await send(owner, chat_id, "m1", "Hi")
        await wait_for_reply(owner, chat_id, sent["reply"]["id"])
        mine, reply = sent["message"]["id"], sent["reply"]["id"]
        for method, path in (
            ("POST", "/speech"),
            ("GET", "/speech"),
            ("GET", "/speech/0"),
        ):
            assert_problem(
                await owner.request(method, f"/api/v1/messages/{mine}{path}"), 409, "not_a_reply"
            )
            assert_problem(
                await other.request(method, f"/api/v1/messages/{reply}{path}"), 404, "not_found"
            )
            assert_problem(
                await owner.request(method, f"/api/v1/messages/nope{path}"), 404, "not_found"
            )
            anonymous = api.client()
            assert (
                await anonymous.request(method, f"/api/v1/messages/{reply}{path}")
            ).status_code == 401
