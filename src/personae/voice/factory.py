"""The voice engines of a process, built from settings and loaded at first use.

`VoiceEngines` is what services ask for voices and transcription: whether voice
is installed at all (the `[voice]` extra, and `PERSONAE_VOICE` not `off`), which
engines have their files pulled, a voice choice checked against what an engine
offers, and the engines themselves. No engine package is imported until an
engine is built, and an engine reads its model only at its first request.
"""

from __future__ import annotations

from pathlib import Path

from personae.errors import UnknownVoice, VoiceFilesMissing, VoiceNotInstalled
from personae.settings import Settings
from personae.voice import files
from personae.voice.base import SpeechEngine, Transcriber, VoiceChoice, VoiceInfo, voice_installed

# Each embedded engine and the set of files it reads.
EMBEDDED_FILES = {"piper": files.PIPER_JOE.name, "kokoro": files.KOKORO.name}
TRANSCRIPTION_FILES = files.WHISPER_TINY_EN.name
MIN_SPEED, MAX_SPEED = 0.5, 2.0
MAX_BLEND = 3


class VoiceEngines:
    def __init__(self, settings: Settings, *, installed: bool | None = None) -> None:
        self._settings = settings
        self._models_dir = settings.voice_dir or settings.data_dir / "models"
        self._installed = settings.voice != "off" and (
            voice_installed() if installed is None else installed
        )
        self._engines: dict[str, SpeechEngine] = {}
        self._transcriber: Transcriber | None = None

    @property
    def installed(self) -> bool:
        return self._installed

    @property
    def models_dir(self) -> Path:
        return self._models_dir

    def require(self) -> None:
        """Raise `VoiceNotInstalled` unless voice can work here."""
        if self._installed:
            return
        if self._settings.voice == "off":
            raise VoiceNotInstalled("voice is turned off on this server (PERSONAE_VOICE=off)")
        raise VoiceNotInstalled(
            "this server runs without voice; its operator can add it with "
            "`pip install 'personae[voice]'` and `personae models pull --voice`"
        )

    def engine_names(self) -> list[str]:
        return list(EMBEDDED_FILES)

    def engine_ready(self, name: str) -> bool:
        """Whether `name` can speak now (installed, and its files pulled)."""
        if not self._installed or name not in self.engine_names():
            return False
        files_name = EMBEDDED_FILES.get(name)
        return files_name is None or files.is_pulled(files_name, self._models_dir)

    def blendable(self, name: str) -> bool:
        return name == "kokoro"

    def engine(self, name: str) -> SpeechEngine:
        """The engine `name`, built at the first ask."""
        self.require()
        if name in self._engines:
            return self._engines[name]
        if name not in self.engine_names():
            raise UnknownVoice(f"there is no speech engine {name!r} on this server")
        files_name = EMBEDDED_FILES[name]
        if not files.is_pulled(files_name, self._models_dir):
            raise VoiceFilesMissing(
                f"the {name} voice files are not on this server; its operator can fetch "
                f"them with `personae models pull {files_name}`"
            )
        folder = files.path_of(files_name, self._models_dir)
        engine: SpeechEngine
        if name == "piper":
            from personae.voice.piper_engine import PiperEngine

            engine = PiperEngine(folder)
        else:
            from personae.voice.kokoro_engine import KokoroEngine

            engine = KokoroEngine(folder)
        self._engines[name] = engine
        return engine

    def voices(self) -> list[VoiceInfo]:
        """Every voice of every engine ready here."""
        return [
            voice
            for name in self.engine_names()
            if self.engine_ready(name)
            for voice in self.engine(name).voices()
        ]

    def default_choice(self) -> VoiceChoice:
        return VoiceChoice(
            self._settings.speech_default_engine, self._settings.speech_default_voice
        )

    def check_choice(self, choice: VoiceChoice) -> None:
        """Refuse a choice no engine here can speak: `UnknownVoice` saying why."""
        self.require()
        if not self.engine_ready(choice.engine):
            raise UnknownVoice(f"the speech engine {choice.engine!r} is not available here")
        offered = {voice.id for voice in self.engine(choice.engine).voices()}
        if choice.voice not in offered:
            raise UnknownVoice(f"{choice.engine} has no voice {choice.voice!r} here")
        if not MIN_SPEED <= choice.speed <= MAX_SPEED:
            raise UnknownVoice(f"the speed must be between {MIN_SPEED} and {MAX_SPEED}")
        if not choice.blend:
            return
        if not self.blendable(choice.engine):
            raise UnknownVoice(f"{choice.engine} voices cannot be blended")
        if len(choice.blend) > MAX_BLEND:
            raise UnknownVoice(f"a blend mixes at most {MAX_BLEND} other voices")
        for voice, weight in choice.blend:
            if voice not in offered:
                raise UnknownVoice(f"{choice.engine} has no voice {voice!r} to blend")
            if weight <= 0:
                raise UnknownVoice("every voice of a blend needs a weight above 0")
        if sum(weight for _, weight in choice.blend) >= 1:
            raise UnknownVoice("the blended voices' weights must add up to less than 1")

    def transcription_ready(self) -> bool:
        return self._installed and files.is_pulled(TRANSCRIPTION_FILES, self._models_dir)

    def transcriber(self) -> Transcriber:
        """The transcriber, built at the first ask."""
        self.require()
        if self._transcriber is None:
            if not files.is_pulled(TRANSCRIPTION_FILES, self._models_dir):
                raise VoiceFilesMissing(
                    "the transcription model is not on this server; its operator can fetch "
                    f"it with `personae models pull {TRANSCRIPTION_FILES}`"
                )
            from personae.voice.whisper_engine import WhisperTranscriber

            self._transcriber = WhisperTranscriber(
                files.path_of(TRANSCRIPTION_FILES, self._models_dir)
            )
        return self._transcriber

    async def close(self) -> None:
        for engine in self._engines.values():
            await engine.close()
        if self._transcriber is not None:
            await self._transcriber.close()
