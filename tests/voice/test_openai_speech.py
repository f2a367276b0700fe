"""The OpenAI-compatible speech and transcription clients against a real local server
that answers like such servers do (tests/fake_audio_server.py)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fake_audio_server import SECONDS_PER_CHAR, SPEECH_RATE, FakeAudioServer, serve_audio, tone
from personae.errors import ConfigurationError, SpeechEngineFailed, UnknownVoice
from personae.settings import Settings
from personae.voice.base import Audio, VoiceChoice
from personae.voice.factory import VoiceEngines
from personae.voice.openai_speech import (
    OpenAISpeechEngine,
    OpenAITranscriber,
    error_message,
    voice_names,
)

TEXT = "The lamp is lit."
ALLOY = VoiceChoice("openai", "alloy")


@pytest.fixture
def audio_server() -> Iterator[FakeAudioServer]:
    with serve_audio(FakeAudioServer(api_key="sk-right")) as server:
        yield server


def _engine(url: str, **options: Any) -> OpenAISpeechEngine:
    settings: dict[str, Any] = {
        "model": "tts-1",
        "voices": ["alloy", "nova", "ghost"],
        "api_key": "sk-right",
        "trust_env": False,
    }
    return OpenAISpeechEngine(url + "/v1/", **(settings | options))


@pytest.fixture
async def engine(audio_server: FakeAudioServer) -> AsyncIterator[OpenAISpeechEngine]:
    speech = _engine(audio_server.url)
    yield speech
    await speech.close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _assert_spoken(audio: Audio, text: str, *, speed: float = 1.0) -> None:
    assert audio.sample_rate == SPEECH_RATE
    assert audio.duration_s == pytest.approx(len(text) * SECONDS_PER_CHAR / speed, abs=1e-3)
    # The samples themselves (WAV is read through floats: within one step).
    heard = np.frombuffer(audio.pcm[:200], dtype="<i2").astype(int)
    assert np.abs(heard - np.frombuffer(tone(0.01)[:200], dtype="<i2")).max() <= 1


async def test_speaks_wav_and_sends_what_openai_asks_for(
    audio_server: FakeAudioServer, engine: OpenAISpeechEngine
) -> None:
    audio = await engine.synthesize(TEXT, VoiceChoice("openai", "nova", speed=1.25))
    _assert_spoken(audio, TEXT, speed=1.25)
    request = audio_server.seen[0]
    assert request.path == "/v1/audio/speech"
    assert request.authorization == "Bearer sk-right"
    assert request.json == {
        "model": "tts-1",
        "input": TEXT,
        "voice": "nova",
        "speed": 1.25,
        "response_format": "wav",
    }
    await engine.synthesize(TEXT, ALLOY)
    assert len(audio_server.connections) == 1  # the connection is kept and reused


async def test_a_stereo_wav_is_mixed_down(
    audio_server: FakeAudioServer, engine: OpenAISpeechEngine
) -> None:
    audio_server.wav_channels = 2
    _assert_spoken(await engine.synthesize(TEXT, ALLOY), TEXT)


def test_voices_come_from_the_settings_list() -> None:
    engine = OpenAISpeechEngine("http://speech.test:8880", model="m", voices=["af_bella", "nova"])
    voices = engine.voices()
    assert [(v.id, v.engine, v.name, v.blendable) for v in voices] == [
        ("af_bella", "openai", "Af Bella", False),
        ("nova", "openai", "Nova", False),
    ]
    assert "speech.test:8880" in voices[0].description
    assert voice_names(" alloy, nova,,alloy ,") == ["alloy", "nova"]


async def test_a_voice_not_listed_or_a_blend_is_refused_before_asking(
    audio_server: FakeAudioServer, engine: OpenAISpeechEngine
) -> None:
    with pytest.raises(UnknownVoice, match="no voice 'echo'"):
        await engine.synthesize(TEXT, VoiceChoice("openai", "echo"))
    with pytest.raises(UnknownVoice, match="blended"):
        await engine.synthesize(TEXT, VoiceChoice("openai", "alloy", blend=(("nova", 0.3),)))
    assert audio_server.seen == []


async def test_a_voice_the_server_does_not_have_is_an_unknown_voice(
    engine: OpenAISpeechEngine,
) -> None:
    # "ghost" is in PERSONAE_SPEECH_VOICES but not on the server: its 400 says so.
    with pytest.raises(UnknownVoice, match="Voice 'ghost' not found"):
        await engine.synthesize(TEXT, VoiceChoice("openai", "ghost"))


async def test_a_server_that_refuses_wav_is_asked_for_pcm_from_then_on(
    audio_server: FakeAudioServer, engine: OpenAISpeechEngine
) -> None:
    audio_server.formats = {"mp3", "pcm"}
    _assert_spoken(await engine.synthesize(TEXT, ALLOY), TEXT)
    _assert_spoken(await engine.synthesize(TEXT, ALLOY), TEXT)
    formats = [request.json["response_format"] for request in audio_server.seen if request.json]
    assert formats == ["wav", "pcm", "pcm"]


async def test_a_server_that_writes_neither_wav_nor_pcm_fails_saying_so(
    audio_server: FakeAudioServer, engine: OpenAISpeechEngine
) -> None:
    audio_server.formats = {"mp3", "opus"}
    with pytest.raises(SpeechEngineFailed, match=r"400: Invalid response_format 'pcm'"):
        await engine.synthesize(TEXT, ALLOY)


async def test_mp3_answered_for_wav_is_refused_readably(
    audio_server: FakeAudioServer, engine: OpenAISpeechEngine
) -> None:
    audio_server.answer_as = "audio/mpeg"
    with pytest.raises(SpeechEngineFailed) as caught:
        await engine.synthesize(TEXT, ALLOY)
    assert "answered audio/mpeg" in caught.value.detail
    assert "WAV or raw PCM" in caught.value.detail


async def test_a_wrong_key_names_the_setting(audio_server: FakeAudioServer) -> None:
    engine = _engine(audio_server.url, api_key="sk-wrong")
    try:
        with pytest.raises(SpeechEngineFailed) as caught:
            await engine.synthesize(TEXT, ALLOY)
    finally:
        await engine.close()
    assert "401: Incorrect API key provided" in caught.value.detail
    assert "PERSONAE_SPEECH_API_KEY" in caught.value.detail
    assert caught.value.status == 502


async def test_a_server_error_is_a_speech_engine_failure(
    audio_server: FakeAudioServer, engine: OpenAISpeechEngine
) -> None:
    audio_server.faults = [500]
    with pytest.raises(SpeechEngineFailed, match="answered /v1/audio/speech with 500: simulated"):
        await engine.synthesize(TEXT, ALLOY)
    _assert_spoken(await engine.synthesize(TEXT, ALLOY), TEXT)  # the next one is fine


async def test_a_dropped_connection_is_sent_again_once(
    audio_server: FakeAudioServer, engine: OpenAISpeechEngine
) -> None:
    await engine.synthesize(TEXT, ALLOY)
    # The kept-alive connection is closed as the next request arrives: sent again.
    audio_server.faults = ["drop"]
    _assert_spoken(await engine.synthesize(TEXT, ALLOY), TEXT)
    assert len(audio_server.seen) == 3
    audio_server.faults = ["drop", "drop"]
    with pytest.raises(SpeechEngineFailed, match="RemoteProtocolError"):
        await engine.synthesize(TEXT, ALLOY)
    assert len(audio_server.seen) == 5


async def test_a_server_that_does_not_answer_times_out(audio_server: FakeAudioServer) -> None:
    engine = _engine(audio_server.url, timeout=0.3)
    try:
        audio_server.faults = ["stall"]
        with pytest.raises(
            SpeechEngineFailed, match=r"did not answer /v1/audio/speech within 0\.3 s"
        ):
            await engine.synthesize(TEXT, ALLOY)
        # A body that trickles in (each byte within the read timeout) is bounded too.
        audio_server.faults = ["trickle"]
        with pytest.raises(SpeechEngineFailed, match=r"within 0\.3 s"):
            await engine.synthesize(TEXT, ALLOY)
    finally:
        await engine.close()


async def test_an_unreachable_server_says_so() -> None:
    engine = _engine(f"http://127.0.0.1:{_closed_port()}")
    try:
        with pytest.raises(SpeechEngineFailed, match="is unreachable"):
            await engine.synthesize(TEXT, ALLOY)
    finally:
        await engine.close()


def test_the_url_must_be_http() -> None:
    with pytest.raises(ConfigurationError, match="PERSONAE_SPEECH_URL"):
        OpenAISpeechEngine("speech.local:8880", model="m", voices=["a"])
    with pytest.raises(ConfigurationError, match="PERSONAE_TRANSCRIPTION_URL"):
        OpenAITranscriber("ftp://x", model="m")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error": {"message": "boom", "type": "server_error"}}', "boom"),
        (b'{"error": "plain"}', "plain"),
        (b'{"detail": "Voice not found"}', "Voice not found"),
        (
            b'{"detail": [{"loc": ["body", "voice"], "msg": "Field required"}]}',
            "voice: Field required",
        ),
        (b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
        (b"", "(no message)"),
    ],
)
def test_error_bodies_of_several_servers_are_read(body: bytes, message: str) -> None:
    assert error_message(body) == message


# Transcription.


def _transcriber(url: str, **options: Any) -> OpenAITranscriber:
    settings: dict[str, Any] = {"model": "whisper-1", "api_key": "sk-right", "trust_env": False}
    return OpenAITranscriber(url, **(settings | options))


async def test_transcribes_a_wav_sent_as_a_multipart_file(audio_server: FakeAudioServer) -> None:
    transcriber = _transcriber(audio_server.url)
    try:
        # 48 kHz in: sent at 16 kHz (what recognisers use), as a WAV file.
        transcript = await transcriber.transcribe(Audio(tone(0.5, 48_000), 48_000), language="en")
    finally:
        await transcriber.close()
    assert (transcript.text, transcript.language) == ("hello there", "en")
    assert transcript.duration_s == pytest.approx(0.5, abs=1e-3)
    request = audio_server.seen[0]
    assert request.path == "/v1/audio/transcriptions"
    assert request.authorization == "Bearer sk-right"
    assert request.fields == {"model": "whisper-1", "response_format": "json", "language": "en"}
    assert request.file_type == "audio/wav"
    assert request.file[:4] == b"RIFF"
    assert int.from_bytes(request.file[24:28], "little") == 16_000


async def test_without_a_language_the_server_says_which_it_heard(
    audio_server: FakeAudioServer,
) -> None:
    audio_server.transcript_language = "english"
    transcriber = _transcriber(audio_server.url)
    try:
        transcript = await transcriber.transcribe(Audio(tone(0.2, 16_000), 16_000))
    finally:
        await transcriber.close()
    assert transcript.language == "english"
    assert "language" not in audio_server.seen[0].fields


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (500, "with 500: simulated 500"),
        ("drop", "RemoteProtocolError"),
        ("stall", r"within 0\.3 s"),
    ],
)
async def test_transcription_failures(
    audio_server: FakeAudioServer, fault: int | str, message: str
) -> None:
    audio_server.faults = [fault, fault]
    transcriber = _transcriber(audio_server.url, timeout=0.3)
    try:
        with pytest.raises(SpeechEngineFailed, match=message):
            await transcriber.transcribe(Audio(tone(0.2, 16_000), 16_000))
    finally:
        await transcriber.close()


async def test_a_wrong_transcription_key_names_its_setting(audio_server: FakeAudioServer) -> None:
    transcriber = _transcriber(audio_server.url, api_key=None)
    try:
        with pytest.raises(SpeechEngineFailed, match="PERSONAE_TRANSCRIPTION_API_KEY"):
            await transcriber.transcribe(Audio(tone(0.2, 16_000), 16_000))
    finally:
        await transcriber.close()


# The OpenAI-compatible clients behind VoiceEngines.


async def test_a_speech_url_adds_the_openai_engine_beside_the_embedded_ones(
    make_settings: Callable[..., Settings], audio_server: FakeAudioServer, tmp_path: Path
) -> None:
    engines = VoiceEngines(
        make_settings(
            voice_dir=tmp_path / "no-files",
            speech_url=audio_server.url,
            speech_api_key="sk-right",
            speech_model="kokoro",
            speech_voices="alloy, nova",
        ),
        installed=True,
    )
    try:
        assert engines.engine_names() == ["piper", "kokoro", "openai"]
        # No files pulled: the embedded engines are not ready, the server is.
        assert [engines.engine_ready(name) for name in engines.engine_names()] == [
            False, False, True,
        ]  # fmt: skip
        assert [(v.engine, v.id) for v in engines.voices()] == [
            ("openai", "alloy"),
            ("openai", "nova"),
        ]
        engines.check_choice(VoiceChoice("openai", "nova", speed=1.5))
        with pytest.raises(UnknownVoice, match="cannot be blended"):
            engines.check_choice(VoiceChoice("openai", "nova", blend=(("alloy", 0.2),)))
        with pytest.raises(UnknownVoice, match="no voice 'echo'"):
            engines.check_choice(VoiceChoice("openai", "echo"))
        _assert_spoken(await engines.engine("openai").synthesize(TEXT, ALLOY), TEXT)
        assert audio_server.seen[0].json is not None
        assert audio_server.seen[0].json["model"] == "kokoro"
    finally:
        await engines.close()


async def test_a_transcription_url_replaces_whisper(
    make_settings: Callable[..., Settings], audio_server: FakeAudioServer, tmp_path: Path
) -> None:
    settings = make_settings(
        voice_dir=tmp_path / "no-files",
        transcription_url=audio_server.url + "/v1",
        transcription_api_key="sk-right",
    )
    engines = VoiceEngines(settings, installed=True)
    try:
        assert engines.engine_names() == ["piper", "kokoro"]  # no speech server set
        assert engines.transcription_ready()
        transcriber = engines.transcriber()
        assert isinstance(transcriber, OpenAITranscriber)
        heard = await transcriber.transcribe(Audio(tone(0.2, 16_000), 16_000), language="en")
        assert heard.text == "hello there"
        assert audio_server.seen[0].fields["model"] == "whisper-1"
    finally:
        await engines.close()
    # Without the URL and without Whisper's files: nothing to hear with.
    assert not VoiceEngines(
        make_settings(voice_dir=tmp_path / "none"), installed=True
    ).transcription_ready()


@pytest.mark.parametrize("setting", ["speech_url", "transcription_url"])
def test_a_server_url_that_is_not_one_stops_the_start(
    make_settings: Callable[..., Settings], setting: str
) -> None:
    with pytest.raises(ConfigurationError, match=f"PERSONAE_{setting.upper()}"):
        VoiceEngines(make_settings(**{setting: "localhost:8880"}), installed=True)
