"""A SIMULATED speech engine, for load and fault tests only.

It speaks no words: each word of the text becomes a short tone whose pitch is
derived from the word (the same word always sounds the same), so its audio is
deterministic and its length grows with the text, as real speech does. What it
simulates faithfully is what Personae depends on: a blocking synthesis run in a
thread, taking time (`delay_s`, or until a test lets it go with `hold`), and
failing when asked (`fail`). Real speech comes from the Piper and Kokoro engines
(piper_engine.py, kokoro_engine.py); nothing in a running server builds this one.
"""

from __future__ import annotations

import asyncio
import threading
import time
import zlib
from dataclasses import dataclass, field

import numpy as np

from personae.errors import UnknownVoice
from personae.voice.base import Audio, VoiceChoice, VoiceInfo
from personae.voice.wav import from_float

ENGINE = "simulated"
VOICE = "tone"


@dataclass
class SimulationOptions:
    sample_rate: int = 16_000
    word_ms: float = 120.0
    gap_ms: float = 30.0
    # Seconds each synthesis takes (slept in its thread, as a blocking engine would).
    delay_s: float = 0.0
    # While set to an unset Event, every synthesis waits in its thread until it is set.
    hold: threading.Event | None = None
    # Syntheses raise an error (as an engine that crashed would).
    fail: bool = False
    # Syntheses started and finished, for tests to wait on.
    started: int = 0
    finished: int = 0
    texts: list[str] = field(default_factory=list)


class SimulatedSpeechEngine:
    """A SIMULATED SpeechEngine: a tone per word (see the module's notes)."""

    name = ENGINE

    def __init__(self, options: SimulationOptions | None = None) -> None:
        self.options = options or SimulationOptions()

    def voices(self) -> list[VoiceInfo]:
        return [
            VoiceInfo(
                id=VOICE,
                engine=ENGINE,
                name="Tone",
                language="en-US",
                description="SIMULATED: a tone per word, for tests",
            )
        ]

    async def synthesize(self, text: str, choice: VoiceChoice) -> Audio:
        if choice.voice != VOICE:
            raise UnknownVoice(f"the simulated engine has no voice {choice.voice!r}")
        self.options.started += 1
        self.options.texts.append(text)
        try:
            return await asyncio.to_thread(self._render, text, choice.speed)
        finally:
            self.options.finished += 1

    def _render(self, text: str, speed: float) -> Audio:
        options = self.options
        if options.hold is not None:
            options.hold.wait(timeout=60)
        if options.delay_s:
            time.sleep(options.delay_s)
        if options.fail:
            raise RuntimeError("the simulated speech engine failed, as asked")
        rate = options.sample_rate
        word_samples = int(rate * options.word_ms / 1000 / speed)
        gap = np.zeros(int(rate * options.gap_ms / 1000), dtype=np.float32)
        parts: list[np.ndarray] = []
        for word in text.split():
            pitch = 200 + zlib.crc32(word.lower().encode()) % 600
            times = np.arange(word_samples, dtype=np.float32) / rate
            parts += [0.3 * np.sin(2 * np.pi * pitch * times, dtype=np.float32), gap]
        samples = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
        return from_float(samples, rate)

    async def close(self) -> None:
        return None
