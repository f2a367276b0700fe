"""The embedded engines on their real files: Piper and Kokoro speak, Whisper hears."""

from __future__ import annotations

import wave
from io import BytesIO
from pathlib import Path

import pytest
from speech_samples import espeak_audio, espeak_wav, word_error_rate

from personae.errors import UnknownVoice, VoiceFilesMissing, VoiceNotInstalled
from personae.settings import Settings
from personae.voice.base import VoiceChoice
from personae.voice.decode import decode_recording
from personae.voice.factory import VoiceEngines
from personae.voice.wav import to_wav

SENTENCE = "The lighthouse keeper lit the lamp as the storm rolled in from the sea."


@pytest.fixture
def engines(make_settings, voice_models_dir: Path) -> VoiceEngines:
    return VoiceEngines(make_settings(voice_dir=voice_models_dir))


def _check_speech(audio_wav: bytes, sample_rate: int) -> float:
    with wave.open(BytesIO(audio_wav)) as reader:
        assert reader.getnchannels() == 1
        assert reader.getsampwidth() == 2
        assert reader.getframerate() == sample_rate
        return reader.getnframes() / sample_rate


@pytest.mark.parametrize(
    ("choice", "rate"),
    [
        (VoiceChoice("piper", "en_US-joe-medium"), 22_050),
        (VoiceChoice("kokoro", "jf_alpha"), 24_000),
    ],
)
async def test_each_engine_speaks_a_sentence_at_its_rate_and_a_plausible_length(
    engines: VoiceEngines, choice: VoiceChoice, rate: int
) -> None:
    audio = await engines.engine(choice.engine).synthesize(SENTENCE, choice)
    seconds = _check_speech(to_wav(audio), rate)
    # 14 words read at a speaking pace: 2 to 9 seconds, never silence.
    assert 2.0 < seconds < 9.0
    assert max(abs(int.from_bytes(audio.pcm[i : i + 2], "little", signed=True))
               for i in range(0, len(audio.pcm), 200)) > 1000  # fmt: skip


async def test_speed_and_blend_change_the_sound(engines: VoiceEngines) -> None:
    kokoro = engines.engine("kokoro")
    plain = await kokoro.synthesize(SENTENCE, VoiceChoice("kokoro", "jf_alpha"))
    fast = await kokoro.synthesize(SENTENCE, VoiceChoice("kokoro", "jf_alpha", speed=1.5))
    blended = await kokoro.synthesize(
        SENTENCE, VoiceChoice("kokoro", "jf_alpha", blend=(("jm_kumo", 0.5),))
    )
    assert fast.duration_s < plain.duration_s * 0.85
    assert blended.pcm != plain.pcm
    piper = engines.engine("piper")
    slow = await piper.synthesize(SENTENCE, VoiceChoice("piper", "en_US-joe-medium", speed=0.7))
    normal = await piper.synthesize(SENTENCE, VoiceChoice("piper", "en_US-joe-medium"))
    assert slow.duration_s > normal.duration_s * 1.2


async def test_whisper_hears_espeak_speech(engines: VoiceEngines, tmp_path: Path) -> None:
    spoken = "Please tell me a story about the old castle by the river."
    transcript = await engines.transcriber().transcribe(espeak_audio(spoken, tmp_path / "s.wav"))
    # tiny.en on espeak's robotic voice misses a word now and then.
    assert word_error_rate(spoken, transcript.text) <= 0.3, transcript.text
    assert 2.0 < transcript.duration_s < 8.0


async def test_piper_speech_heard_back_by_whisper(engines: VoiceEngines) -> None:
    choice = VoiceChoice("piper", "en_US-joe-medium")
    audio = await engines.engine("piper").synthesize(SENTENCE, choice)
    transcript = await engines.transcriber().transcribe(audio)
    assert word_error_rate(SENTENCE, transcript.text) <= 0.2, transcript.text


def test_recordings_decode_from_compressed_formats(tmp_path: Path) -> None:
    import av

    wav = espeak_wav("Hello from a browser recording.", tmp_path / "r.wav")
    source = decode_recording(wav.read_bytes(), max_seconds=30)
    webm = tmp_path / "r.webm"
    with av.open(str(webm), "w") as out:
        stream = out.add_stream("libopus", rate=48_000)
        with av.open(str(wav)) as inp:
            for frame in inp.decode(audio=0):
                frame.pts = None
                for packet in stream.encode(frame):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    decoded = decode_recording(webm.read_bytes(), max_seconds=30)
    assert decoded.sample_rate == 16_000
    assert abs(decoded.duration_s - source.duration_s) < 0.2


@pytest.mark.parametrize("data", [b"", b"not audio at all" * 100, b"RIFF\x00\x00\x00\x00WAVE"])
def test_what_is_not_audio_is_refused(data: bytes) -> None:
    from personae.errors import AudioUnreadable

    with pytest.raises(AudioUnreadable):
        decode_recording(data, max_seconds=30)


def test_a_recording_longer_than_the_limit_is_refused_while_decoding(tmp_path: Path) -> None:
    from personae.errors import AudioTooLong

    wav = espeak_wav("This sentence lasts longer than one second for sure.", tmp_path / "l.wav")
    with pytest.raises(AudioTooLong):
        decode_recording(wav.read_bytes(), max_seconds=1.0)


def test_choices_are_checked_against_what_engines_offer(engines: VoiceEngines) -> None:
    engines.check_choice(VoiceChoice("kokoro", "jf_alpha", 1.2, (("jm_kumo", 0.4),)))
    bad = [
        VoiceChoice("espeak", "x"),
        VoiceChoice("piper", "nobody"),
        VoiceChoice("piper", "en_US-joe-medium", speed=3.0),
        VoiceChoice("piper", "en_US-joe-medium", blend=(("en_US-joe-medium", 0.5),)),
        VoiceChoice("kokoro", "jf_alpha", blend=(("jm_kumo", 0.6), ("jf_nezumi", 0.5))),
        VoiceChoice("kokoro", "jf_alpha", blend=(("nobody", 0.2),)),
        VoiceChoice("kokoro", "jf_alpha", blend=(("jm_kumo", 0.0),)),
    ]
    for choice in bad:
        with pytest.raises(UnknownVoice):
            engines.check_choice(choice)
    assert {v.engine for v in engines.voices()} == {"piper", "kokoro"}


def test_without_the_extra_or_the_files_voice_says_so(make_settings, tmp_path: Path) -> None:
    missing = VoiceEngines(make_settings(voice_dir=tmp_path / "none"))
    with pytest.raises(VoiceFilesMissing, match="personae models pull piper-joe"):
        missing.engine("piper")
    assert missing.voices() == []
    assert not missing.transcription_ready()
    for engines in (
        VoiceEngines(make_settings(voice="off")),
        VoiceEngines(make_settings(), installed=False),
    ):
        assert not engines.installed
        with pytest.raises(VoiceNotInstalled):
            engines.engine("piper")
        with pytest.raises(VoiceNotInstalled):
            engines.transcriber()


def test_settings_type_is_used(settings: Settings) -> None:
    assert settings.voice == "auto"
