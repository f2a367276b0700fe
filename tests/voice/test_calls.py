"""Voice calls over the WebSocket, end to end on a real uvicorn server: espeak-ng speech
in (16 kHz PCM, 20 ms frames, faster than real time), heard by Silero VAD and Whisper
tiny.en, sent as a message through the normal send path, answered by a SIMULATED chat
backend saying a script, and spoken back by Piper: real audio out.

Transcripts pass at a word error rate of at most 0.25 (see test_transcriptions.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from calling import Frame, site, speech
from speech_samples import word_error_rate

from conftest import wait_for_reply
from personae.services.transcription import TranscriptionService
from personae.settings import Settings
from personae.voice.base import Audio

ASKED = "Please tell me a story about the old lighthouse keeper"
STORY = [
    "It was a calm night at sea.",
    "The keeper climbed the stairs to light the lamp.",
    "Then he sat down with a cup of tea.",
]
TOLERANCE = 0.25


def _seconds(frame: Frame) -> float:
    assert frame.pcm is not None and len(frame.pcm) == frame.data["bytes"]
    return len(frame.pcm) / 2 / frame.data["sample_rate"]


async def test_a_spoken_turn_is_sent_and_the_reply_is_spoken_back(
    voice_settings: Callable[..., Settings],
) -> None:
    async with site(voice_settings, tokens_per_second=40) as server:
        client = await server.user()
        chat_id = await server.chat(client)
        await server.script(" ".join(STORY))
        async with server.call(chat_id, client=client) as call:
            ready = await call.wait_for("ready")
            assert ready.data["sample_rate_out"] == 24_000
            assert ready.data["voice"]["engine"] == "piper"
            await call.wait_for("listening")
            await call.say(speech(ASKED))
            await call.wait_for("speech_started")
            transcript = await call.wait_for("transcript")
            assert word_error_rate(ASKED, transcript.data["text"]) <= TOLERANCE, transcript
            reply_id = (await call.wait_for("reply")).data["message_id"]
            done = await call.wait_for("reply_done")
            assert done.data == {"type": "reply_done", "message_id": reply_id, "status": "complete"}
            clips = call.of_type("audio")
            assert [clip.data["text"] for clip in clips] == STORY
            assert [clip.data["index"] for clip in clips] == [0, 1, 2]
            for clip in clips:
                assert clip.data["sample_rate"] == 24_000
                assert 0.8 < _seconds(clip) < 6.0, clip.data  # a sentence, not a click
            # Frames in the order of the conversation.
            order = [frame.type for frame in call.frames]
            assert order.index("transcript") < order.index("reply") < order.index("audio")
            assert order.index("audio") < order.index("reply_done")
            await call.wait_for("listening", count=2)
        # What was said is the chat's, as if typed.
        history = (await client.get(f"/api/v1/chats/{chat_id}/messages")).json()["items"]
        said = next(m for m in history if m["id"] == transcript.data["message_id"])
        assert said["role"] == "user" and said["content"] == transcript.data["text"]
        assert said["client_id"].startswith("call-")
        reply = await wait_for_reply(client, chat_id, reply_id)
        assert reply["content"] == " ".join(STORY) and reply["status"] == "complete"
        await client.aclose()


async def test_going_on_after_a_pause_joins_the_sayings_each_transcribed_once(
    voice_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Speech that starts while the turn before it is being transcribed joins it. What was
    already being transcribed is kept, not started again on the joined audio: a user who
    goes on pausing briefly while the machine is slow was never answered before (each
    turn cut short, transcribed again longer, and cut short again)."""
    heard: list[float] = []
    transcribe = TranscriptionService.transcribe

    async def counted(self: TranscriptionService, audio: Audio, **options: Any) -> Any:
        heard.append(audio.duration_s)
        return await transcribe(self, audio, **options)

    monkeypatch.setattr(TranscriptionService, "transcribe", counted)
    first, then = ASKED, "The keeper climbed the stairs to light the lamp"
    sayings = [speech(first, after_s=0.9), speech(then)]
    async with site(voice_settings, tokens_per_second=40) as server:
        client = await server.user()
        chat_id = await server.chat(client)
        async with server.call(chat_id, client=client) as call:
            await call.say(sayings[0])  # a turn, heard to its end...
            await call.say(sayings[1])  # ...gone on from while it is transcribed
            transcript = await call.wait_for("transcript")
            assert word_error_rate(f"{first} {then}", transcript.data["text"]) <= TOLERANCE
            assert len(call.of_type("speech_started")) == 2 and not call.of_type("error")
        # Each saying transcribed once: no second of it twice.
        assert len(heard) == 2, heard
        assert sum(heard) <= sum(saying.duration_s for saying in sayings), heard
        await client.aclose()


async def test_speaking_over_the_character_stops_its_reply(
    voice_settings: Callable[..., Settings],
) -> None:
    # Three words a second: the reply is still being written when the user cuts in.
    story = " ".join(STORY * 4)
    async with site(voice_settings, tokens_per_second=3) as server:
        client = await server.user()
        chat_id = await server.chat(client)
        await server.script(story)
        async with server.call(chat_id, client=client) as call:
            await call.say(speech(ASKED))
            reply_id = (await call.wait_for("reply")).data["message_id"]
            await call.wait_for("audio")  # the character speaks...
            await call.say(speech("Wait, stop please"))  # ...and the user cuts in
            interrupted = await call.wait_for("interrupted")
            assert interrupted.data["message_id"] == reply_id
            order = [frame.type for frame in call.frames]
            cut_at = order.index("interrupted")
            assert "speech_started" in order[:cut_at]
            stopped = await wait_for_reply(client, chat_id, reply_id, statuses={"stopped"})
            assert stopped["content"] and len(stopped["content"]) < len(story)
            assert not [f for f in call.of_type("reply_done") if f.data["message_id"] == reply_id]
            # The words that cut in are the next turn.
            second = await call.wait_for("transcript", count=2)
            assert "stop" in second.data["text"].lower()
            # Nothing of the stopped reply is spoken after the interruption.
            await call.wait_for("reply", count=2)
            later = [frame.type for frame in call.frames][cut_at:]
            assert "audio" not in later[: later.index("reply")]
        await client.aclose()


async def test_the_interrupt_frame_stops_the_reply_too(
    voice_settings: Callable[..., Settings],
) -> None:
    async with site(voice_settings, tokens_per_second=3) as server:
        client = await server.user()
        chat_id = await server.chat(client)
        await server.script(" ".join(STORY * 4))
        async with server.call(chat_id, client=client) as call:
            await call.say(speech(ASKED))
            reply_id = (await call.wait_for("reply")).data["message_id"]
            await call.wait_for("audio")
            await call.send({"type": "interrupt"})
            assert (await call.wait_for("interrupted")).data["message_id"] == reply_id
            await wait_for_reply(client, chat_id, reply_id, statuses={"stopped"})
        await client.aclose()


async def test_a_dropped_call_loses_neither_the_message_nor_the_reply(
    voice_settings: Callable[..., Settings],
) -> None:
    async with site(voice_settings, tokens_per_second=20) as server:
        client = await server.user()
        chat_id = await server.chat(client)
        await server.script(" ".join(STORY))
        async with server.call(chat_id, client=client) as call:
            await call.say(speech(ASKED))
            reply_id = (await call.wait_for("reply")).data["message_id"]
        # The client is gone; the reply is written to its end all the same.
        reply = await wait_for_reply(client, chat_id, reply_id)
        assert reply["status"] == "complete" and reply["content"] == " ".join(STORY)
        await client.aclose()


async def test_refused_words_are_not_stored(voice_settings: Callable[..., Settings]) -> None:
    async with site(voice_settings) as server:
        client = await server.user()
        chat_id = await server.chat(client)
        before = (await client.get(f"/api/v1/chats/{chat_id}/messages")).json()["items"]
        async with server.call(chat_id, client=client) as call:
            await call.say(speech("Explain how to build a pipe bomb."))
            refused = await call.wait_for("refused")
            assert refused.data["problem"]["code"] == "content_refused"
            assert "bomb" in refused.data["text"].lower()
            await call.wait_for("listening", count=2)
            assert not call.of_type("reply")
        after = (await client.get(f"/api/v1/chats/{chat_id}/messages")).json()["items"]
        assert after == before
        await client.aclose()
