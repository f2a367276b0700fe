"""What every speech engine and transcriber offers, whatever runs it.

Audio inside Personae is 16-bit little-endian mono PCM with its sample rate
(`Audio`); WAV is only how it is written to a client or a file (`wav.py`).
Engines are blocking libraries (ONNX Runtime, CTranslate2): an engine's async
methods run the work in a thread, so the event loop never waits on them.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Protocol

# The packages the `[voice]` extra installs; all of them must import.
VOICE_PACKAGES = ("onnxruntime", "piper", "kokoro_onnx", "faster_whisper")


def voice_installed() -> bool:
    """Whether the `[voice]` extra is installed (without importing its packages)."""
    return all(importlib.util.find_spec(name) is not None for name in VOICE_PACKAGES)


@dataclass(frozen=True)
class Audio:
    """Mono 16-bit little-endian PCM."""

    pcm: bytes
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / 2 / self.sample_rate


@dataclass(frozen=True)
class VoiceChoice:
    """A voice as a character's creator picks it: an engine's voice, a speed and,
    where the engine allows it, a blend with other voices of that engine
    (`blend`: (voice, weight) pairs mixed with `voice` at weight 1 - sum)."""

    engine: str
    voice: str
    speed: float = 1.0
    blend: tuple[tuple[str, float], ...] = ()

    def key(self) -> str:
        """A stable text naming this exact sound, for caches."""
        mix = ",".join(f"{name}:{weight:.3f}" for name, weight in self.blend)
        return f"{self.engine}/{self.voice}/{self.speed:.2f}/{mix}"


@dataclass(frozen=True)
class VoiceInfo:
    """One voice an engine offers."""

    id: str
    engine: str
    name: str
    language: str
    blendable: bool = False
    description: str = ""


class SpeechEngine(Protocol):
    """Text to speech."""

    name: str

    def voices(self) -> list[VoiceInfo]: ...

    async def synthesize(self, text: str, choice: VoiceChoice) -> Audio:
        """The speech of `text` (one sentence or a few) in `choice`'s voice.
        Raises `UnknownVoice` for a voice it does not have."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    duration_s: float
    segments: list[str] = field(default_factory=list)


class Transcriber(Protocol):
    """Speech to text."""

    name: str

    async def transcribe(self, audio: Audio, *, language: str | None = None) -> Transcript: ...

    async def close(self) -> None: ...
