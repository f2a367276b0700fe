"""faster-whisper (CTranslate2): the shipped transcriber, Whisper tiny.en, int8 on
the CPU (voice/files.py `whisper-tiny-en`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from personae.voice._loading import LoadedOnce
from personae.voice.base import Audio, Transcript
from personae.voice.wav import resample, to_float

NAME = "faster-whisper"
_RATE = 16_000


class WhisperTranscriber:
    name = NAME

    def __init__(self, folder: Path, *, threads: int = 2) -> None:
        self._loaded = LoadedOnce(lambda: _load(folder, threads))

    async def transcribe(self, audio: Audio, *, language: str | None = None) -> Transcript:
        result = await self._loaded.run(lambda model: _transcribe(model, audio, language))
        assert isinstance(result, Transcript)
        return result

    async def close(self) -> None:
        return None


def _load(folder: Path, threads: int) -> Any:
    from faster_whisper import WhisperModel

    return WhisperModel(str(folder), device="cpu", compute_type="int8", cpu_threads=threads)


def _transcribe(model: Any, audio: Audio, language: str | None) -> Transcript:
    samples = to_float(resample(audio, _RATE))
    # tiny.en knows English only; beam 1 is greedy decoding, the fastest.
    segments, info = model.transcribe(
        samples, language=language or "en", beam_size=1, vad_filter=False,
        condition_on_previous_text=False,
    )  # fmt: skip
    texts = [segment.text.strip() for segment in segments]
    return Transcript(
        text=" ".join(text for text in texts if text),
        language=info.language,
        duration_s=round(len(samples) / _RATE, 3),
        segments=texts,
    )
