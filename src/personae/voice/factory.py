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
from personae.voice.openai_speech import server_root

# Each embedded engine and the set of files it reads.
EMBEDDED_FILES = {"piper": files.PIPER_JOE.name, "kokoro": files.KOKORO.name}
TRANSCRIPTION_FILES = files.WHISPER_TINY_EN.name
# The engine of an operator's OpenAI-compatible speech server (PERSONAE_SPEECH_URL).
OPENAI_ENGINE = "openai"
MIN_SPEED, MAX_SPEED = 0.5, 2.0
MAX_BLEND = 3


def models_dir_of(settings: Settings) -> Path:
    """Where the voice files are: PERSONAE_VOICE_DIR, else the data directory's models."""
    return settings.voice_dir or settings.data_dir / "models"


class VoiceEngines:
    def __init__(self, settings: Settings, *, installed: bool | None = None) -> None:
        self._settings = settings
        self._models_dir = models_dir_of(settings)
        self._installed = settings.voice != "off" and (
            voice_installed() if installed is None else installed
        )
        self._engines: dict[str, SpeechEngine] = {}
        self._transcriber: Transcriber | None = None
        # The sets of files found whole once: `files.is_pulled` runs on the event loop,
        # and hashes every file again when its folder cannot keep the hashes it checked.
        self._pulled: set[str] = set()
        # A server URL that is not one stops the start, naming its setting.
        for url, setting in (
            (settings.speech_url, "PERSONAE_SPEECH_URL"),
            (settings.transcription_url, "PERSONAE_TRANSCRIPTION_URL"),
        ):
            if url:
                server_root(url, setting)

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
        """The embedded engines, and "openai" when an operator's speech server is set."""
        names = list(EMBEDDED_FILES)
        if self._settings.speech_url:
            names.append(OPENAI_ENGINE)
        return names

    def engine_ready(self, name: str) -> bool:
        """Whether `name` can speak now (installed, and its files pulled: a speech
        server has none)."""
        if not self._installed or name not in self.engine_names():
            return False
        files_name = EMBEDDED_FILES.get(name)
        return files_name is None or self._is_pulled(files_name)

    def _is_pulled(self, files_name: str) -> bool:
        if files_name not in self._pulled and files.is_pulled(files_name, self._models_dir):
            self._pulled.add(files_name)
        return files_name in self._pulled

    def blendable(self, name: str) -> bool:
        return name == "kokoro"

    def engine(self, name: str) -> SpeechEngine:
        """The engine `name`, built at the first ask."""
        self.require()
        if name in self._engines:
            return self._engines[name]
        if name not in self.engine_names():
            raise UnknownVoice(f"there is no speech engine {name!r} on this server")
        if name == OPENAI_ENGINE:
            self._engines[name] = self._openai_engine()
            return self._engines[name]
        files_name = EMBEDDED_FILES[name]
        if not self._is_pulled(files_name):
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

    def _openai_engine(self) -> SpeechEngine:
        from personae.voice.openai_speech import OpenAISpeechEngine, voice_names

        settings = self._settings
        assert settings.speech_url is not None
        return OpenAISpeechEngine(
            settings.speech_url,
            model=settings.speech_model,
            voices=voice_names(settings.speech_voices),
            api_key=settings.speech_api_key,
        )

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
        """Whether speech can be heard: an operator's transcription server is set, or
        Whisper's files are pulled."""
        return self._installed and (
            bool(self._settings.transcription_url) or self._is_pulled(TRANSCRIPTION_FILES)
        )

    def transcriber(self) -> Transcriber:
        """The transcriber, built at the first ask."""
        self.require()
        if self._transcriber is None and self._settings.transcription_url:
            from personae.voice.openai_speech import OpenAITranscriber

            self._transcriber = OpenAITranscriber(
                self._settings.transcription_url,
                model=self._settings.transcription_model,
                api_key=self._settings.transcription_api_key,
            )
        if self._transcriber is None:
            if not self._is_pulled(TRANSCRIPTION_FILES):
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
