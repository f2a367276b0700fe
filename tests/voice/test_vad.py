"""Voice activity detection (Silero VAD on ONNX Runtime) on real espeak-ng speech."""

from __future__ import annotations

import pytest
from recordings import espeak, joined, silence

from personae.voice.base import Audio
from personae.voice.vad import (
    SAMPLE_RATE,
    SileroVad,
    SpeechStarted,
    TurnDetector,
    TurnEnded,
    VadConfig,
)

FRAME_BYTES = SAMPLE_RATE * 20 // 1000 * 2  # 20 ms


@pytest.fixture(scope="module")
def model() -> SileroVad:
    return SileroVad.load()


def _feed(detector: TurnDetector, audio: Audio) -> list[tuple[float, SpeechStarted | TurnEnded]]:
    """Fed in 20 ms frames as a call sends them: (seconds into the audio, event)."""
    heard = []
    for start in range(0, len(audio.pcm), FRAME_BYTES):
        for event in detector.feed(audio.pcm[start : start + FRAME_BYTES]):
            heard.append((start / 2 / SAMPLE_RATE, event))
    return heard


def test_a_sentence_between_silences_is_one_turn(model: SileroVad) -> None:
    speech = joined(espeak("Please tell me a story about the old lighthouse keeper"))
    heard = _feed(TurnDetector(model), joined(silence(1.0), speech, silence(1.5)))
    assert [type(event) for _, event in heard] == [SpeechStarted, TurnEnded]
    (started_at, _), (ended_at, ended) = heard
    assert 1.0 <= started_at <= 1.6  # espeak's own lead-in, then min_speech_ms
    speech_end = 1.0 + speech.duration_s
    # The turn ends ~700 ms after the last word (espeak's trailing quiet counts too).
    assert speech_end + 0.3 <= ended_at <= speech_end + 1.0
    assert isinstance(ended, TurnEnded) and not ended.cut
    assert ended.audio.sample_rate == SAMPLE_RATE
    # The words and a little around them, not the seconds of silence.
    assert speech.duration_s - 0.5 <= ended.audio.duration_s <= speech.duration_s + 0.8


def test_a_short_pause_inside_a_turn_does_not_end_it(model: SileroVad) -> None:
    first, second = espeak("I would like some tea"), espeak("and a slice of cake")
    audio = joined(silence(0.5), first, silence(0.3), second, silence(1.2))
    heard = _feed(TurnDetector(model), audio)
    assert [type(event) for _, event in heard] == [SpeechStarted, TurnEnded]


def test_two_sentences_with_a_long_pause_are_two_turns(model: SileroVad) -> None:
    sentence = espeak("Good morning to you")
    heard = _feed(
        TurnDetector(model), joined(silence(0.5), sentence, silence(1.5), sentence, silence(1.5))
    )
    assert [type(event) for _, event in heard] == [SpeechStarted, TurnEnded] * 2


def test_the_pause_that_ends_a_turn_is_a_setting(model: SileroVad) -> None:
    sentence = espeak("Good morning to you")
    audio = joined(silence(0.5), sentence, silence(1.0), sentence, silence(2.5))
    patient = TurnDetector(model, VadConfig(end_silence_ms=2000))
    assert [type(event) for _, event in _feed(patient, audio)] == [SpeechStarted, TurnEnded]


def test_silence_and_quiet_noise_are_not_speech(model: SileroVad) -> None:
    import numpy as np

    noise = (np.random.default_rng(7).normal(0, 300, SAMPLE_RATE * 3)).astype("<i2").tobytes()
    heard = _feed(TurnDetector(model), joined(silence(2.0), Audio(noise, SAMPLE_RATE)))
    assert heard == []


def test_a_turn_that_never_pauses_is_cut_at_the_limit(model: SileroVad) -> None:
    speech = espeak("one two three four five six seven eight nine ten eleven twelve")
    detector = TurnDetector(model, VadConfig(max_turn_s=2.0))
    heard = _feed(detector, joined(silence(0.3), speech, silence(1.0)))
    ended = [event for _, event in heard if isinstance(event, TurnEnded)]
    assert ended[0].cut and ended[0].audio.duration_s <= 2.0 + 0.05
