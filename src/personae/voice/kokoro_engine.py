"""Kokoro-82M (kokoro-onnx on ONNX Runtime): voices that blend, 24,000 Hz.

The shipped voices are the five of the Japanese Kokoro voice pack (jf_alpha,
jf_gongitsune, jf_nezumi, jf_tebukuro, jm_kumo: voice/files.py `kokoro`). A
Kokoro voice is a style vector, so a blend is a weighted mix of vectors; text is
phonemised by espeak-ng (American English), whatever voice speaks it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from personae.errors import UnknownVoice
from personae.voice._loading import LoadedOnce
from personae.voice.base import Audio, VoiceChoice, VoiceInfo
from personae.voice.wav import from_float

ENGINE = "kokoro"
_NAMES = {
    "jf_alpha": "Alpha",
    "jf_gongitsune": "Gongitsune",
    "jf_nezumi": "Nezumi",
    "jf_tebukuro": "Tebukuro",
    "jm_kumo": "Kumo",
}


class KokoroEngine:
    name = ENGINE

    def __init__(self, folder: Path) -> None:
        self._model = folder / "kokoro-int8.onnx"
        self._voices_file = folder / "voices.npz"
        with np.load(self._voices_file) as voices:
            self._voice_ids = sorted(voices.files)
        self._loaded = LoadedOnce(self._load)

    def voices(self) -> list[VoiceInfo]:
        return [
            VoiceInfo(
                id=voice,
                engine=ENGINE,
                name=_NAMES.get(voice, voice),
                language="en-us",
                blendable=True,
                description=("male" if voice[1:2] == "m" else "female") + " Kokoro voice",
            )
            for voice in self._voice_ids
        ]

    async def synthesize(self, text: str, choice: VoiceChoice) -> Audio:
        unknown = [v for v in (choice.voice, *(name for name, _ in choice.blend))
                   if v not in self._voice_ids]  # fmt: skip
        if unknown:
            raise UnknownVoice(f"Kokoro has no voice {unknown[0]!r} here")
        result = await self._loaded.run(lambda kokoro: _synthesize(kokoro, text, choice))
        assert isinstance(result, Audio)
        return result

    async def close(self) -> None:
        return None

    def _load(self) -> Any:
        from kokoro_onnx import Kokoro

        kokoro: Any = Kokoro(str(self._model), str(self._voices_file))
        # kokoro-onnx keeps the .npz open for lazy reads: read every voice now and close it.
        with kokoro.voices as voices:
            kokoro.voices = {name: voices[name] for name in voices.files}
        return kokoro


def _synthesize(kokoro: Any, text: str, choice: VoiceChoice) -> Audio:
    own_weight = 1.0 - sum(weight for _, weight in choice.blend)
    style = kokoro.get_voice_style(choice.voice) * own_weight
    for voice, weight in choice.blend:
        style = style + kokoro.get_voice_style(voice) * weight
    samples, sample_rate = kokoro.create(text, voice=style, speed=choice.speed, lang="en-us")
    return from_float(samples, int(sample_rate))
