"""Piper (piper-tts on ONNX Runtime): a fast single-speaker voice per model file.

The shipped voice is en_US joe (medium), 22,050 Hz, CC0 (voice/files.py `piper-joe`).
Speed maps to Piper's length scale (1 / speed); Piper has no blend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from personae.errors import UnknownVoice
from personae.voice._loading import LoadedOnce
from personae.voice.base import Audio, VoiceChoice, VoiceInfo

ENGINE = "piper"


class PiperEngine:
    name = ENGINE

    def __init__(self, folder: Path) -> None:
        models = sorted(folder.glob("*.onnx"))
        self._models = {path.stem: path for path in models}
        self._loaded = {voice: _loader(path) for voice, path in self._models.items()}

    def voices(self) -> list[VoiceInfo]:
        return [
            VoiceInfo(
                id=voice,
                engine=ENGINE,
                name=voice.split("-")[1].title() if voice.count("-") >= 2 else voice,
                language=voice.split("-")[0].replace("_", "-"),
                description="Piper voice " + voice,
            )
            for voice in self._models
        ]

    async def synthesize(self, text: str, choice: VoiceChoice) -> Audio:
        loaded = self._loaded.get(choice.voice)
        if loaded is None:
            raise UnknownVoice(f"Piper has no voice {choice.voice!r} here")
        result = await loaded.run(lambda voice: _synthesize(voice, text, choice.speed))
        assert isinstance(result, Audio)
        return result

    async def close(self) -> None:
        return None


def _loader(path: Path) -> LoadedOnce[Any]:
    def load() -> Any:
        from piper import PiperVoice

        return PiperVoice.load(path, config_path=path.with_name(path.name + ".json"))

    return LoadedOnce(load)


def _synthesize(voice: Any, text: str, speed: float) -> Audio:
    from piper import SynthesisConfig

    config = SynthesisConfig(length_scale=1.0 / speed)
    pcm = bytearray()
    for chunk in voice.synthesize(text, syn_config=config):
        pcm += chunk.audio_int16_bytes
    return Audio(bytes(pcm), int(voice.config.sample_rate))
