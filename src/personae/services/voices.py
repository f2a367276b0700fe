"""Voices: what this server can speak with, a character's voice, and speaking.

`VoiceService` wraps the process's engines (voice/factory.py): the voices list
(`GET /api/v1/voices`), a voice choice checked for a character, and synthesis
through the synthesis line (voice_slots.py: its own slots, places in line,
`voice_busy` past its bound). Engines are blocking: they run in threads, and
nothing here holds the event loop while they speak. A character's voice is kept
in its card's `extensions["personae"]["voice"]`, so an exported card carries it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from personae.errors import AppError, SpeechEngineFailed, VoiceNotInstalled
from personae.offload import bounded
from personae.services.ratelimit import RateLimiter
from personae.services.voice_slots import SYNTHESIS, PlaceListener, VoiceSlots
from personae.settings import Settings
from personae.storage.repos.accounts import UserRecord
from personae.voice.base import Audio, VoiceChoice, VoiceInfo
from personae.voice.factory import VoiceEngines
from personae.voice.wav import to_wav

log = logging.getLogger("personae.voice")

EXTENSION = "personae"  # the key of Personae's own part of a card's `extensions`
VOICE_KEY = "voice"
# The longest one piece of text (<= 300 characters) may take to speak.
_PIECE_BUDGET_S = 60.0
SAMPLE_TEXT = "Hello! This is how I sound. Shall we talk for a while?"


@dataclass(frozen=True)
class EngineState:
    name: str
    ready: bool
    blendable: bool


@dataclass(frozen=True)
class VoiceCatalogue:
    """What `GET /api/v1/voices` says."""

    installed: bool
    transcription: bool
    engines: list[EngineState]
    voices: list[VoiceInfo]
    default: VoiceChoice | None
    audio_max_bytes: int
    audio_max_seconds: float


def choice_to_json(choice: VoiceChoice) -> dict[str, Any]:
    """A voice choice as the API and a card's extensions write it."""
    return {
        "engine": choice.engine,
        "voice": choice.voice,
        "speed": choice.speed,
        "blend": [{"voice": voice, "weight": weight} for voice, weight in choice.blend],
    }


def choice_from_json(value: Any) -> VoiceChoice | None:
    """A voice choice from its JSON form; None for anything that is not one (a card
    from elsewhere may carry anything in its extensions)."""
    if not isinstance(value, Mapping):
        return None
    engine, voice, speed = value.get("engine"), value.get("voice"), value.get("speed", 1.0)
    blend = value.get("blend") or []
    if not isinstance(engine, str) or not isinstance(voice, str) or not isinstance(blend, list):
        return None
    if isinstance(speed, bool) or not isinstance(speed, int | float):
        return None
    mixed: list[tuple[str, float]] = []
    for part in blend:
        if not isinstance(part, Mapping):
            return None
        name, weight = part.get("voice"), part.get("weight")
        if not isinstance(name, str) or isinstance(weight, bool):
            return None
        if not isinstance(weight, int | float):
            return None
        mixed.append((name, float(weight)))
    return VoiceChoice(engine, voice, float(speed), tuple(mixed))


def stored_voice(extensions: Mapping[str, Any] | None) -> VoiceChoice | None:
    """The voice a character's extensions name, if they name one."""
    ours = (extensions or {}).get(EXTENSION)
    return choice_from_json(ours.get(VOICE_KEY)) if isinstance(ours, Mapping) else None


def with_voice(extensions: Mapping[str, Any] | None, choice: VoiceChoice | None) -> dict[str, Any]:
    """`extensions` with the voice set (or taken out, for None)."""
    updated = dict(extensions or {})
    ours = updated.get(EXTENSION)
    ours = dict(ours) if isinstance(ours, Mapping) else {}
    if choice is None:
        ours.pop(VOICE_KEY, None)
    else:
        ours[VOICE_KEY] = choice_to_json(choice)
    if ours:
        updated[EXTENSION] = ours
    else:
        updated.pop(EXTENSION, None)
    return updated


class VoiceService:
    """The voices of this process and speaking with them (see the module's notes)."""

    def __init__(
        self,
        engines: VoiceEngines,
        slots: VoiceSlots,
        limiter: RateLimiter,
        settings: Settings,
    ) -> None:
        # Public so a load or fault test can put a SIMULATED engine in (voice/simulated.py).
        self.engines = engines
        self.slots = slots
        self._limiter = limiter
        self._settings = settings

    @property
    def installed(self) -> bool:
        return self.engines.installed

    def require(self) -> None:
        """Raise `VoiceNotInstalled` unless voice works on this server."""
        self.engines.require()

    def catalogue(self) -> VoiceCatalogue:
        """Engines, voices and limits; without voice, installed=false and empty lists."""
        settings = self._settings
        if not self.engines.installed:
            return VoiceCatalogue(
                False, False, [], [], None, settings.audio_max_bytes, settings.audio_max_seconds
            )
        engines = [
            EngineState(name, self.engines.engine_ready(name), self.engines.blendable(name))
            for name in self.engines.engine_names()
        ]
        return VoiceCatalogue(
            installed=True,
            transcription=self.engines.transcription_ready(),
            engines=engines,
            voices=self.engines.voices(),
            default=self.engines.default_choice(),
            audio_max_bytes=settings.audio_max_bytes,
            audio_max_seconds=settings.audio_max_seconds,
        )

    def check_choice(self, choice: VoiceChoice) -> VoiceChoice:
        """The choice, if an engine here can speak it (UnknownVoice, VoiceNotInstalled)."""
        self.engines.check_choice(choice)
        return choice

    def voice_of(self, extensions: Mapping[str, Any] | None) -> VoiceChoice:
        """The voice a character speaks with: its own, if this server can speak it,
        else the default (a card from elsewhere may name a voice this server lacks)."""
        choice = stored_voice(extensions)
        if choice is not None:
            try:
                return self.check_choice(choice)
            except VoiceNotInstalled:
                raise
            except AppError:
                log.info("a character's voice is not available here; the default speaks")
        return self.engines.default_choice()

    def check_ready(self, choice: VoiceChoice) -> None:
        """Refuse at once (`voice_files_missing`) a voice whose engine has no files here,
        before work that would fail later is started."""
        self.engines.engine(choice.engine)

    def check_room(self) -> None:
        """Refuse at once (`voice_busy`) when the synthesis line is full, before work
        that would wait in it is started."""
        self.slots.check_room(SYNTHESIS)

    async def rate_limit(self, user: UserRecord) -> None:
        """One more synthesis asked by `user` (PERSONAE_SPEECH_RATE_PER_USER)."""
        await self._limiter.hit("speech-user", user.id, self._settings.speech_rate_per_user)

    async def synthesize(
        self, text: str, choice: VoiceChoice, on_place: PlaceListener | None = None
    ) -> Audio:
        """`text` spoken in `choice`'s voice, through a synthesis slot (waiting in line
        for one, told by `on_place`). An engine's own failure is `speech_engine_failed`."""
        engine = self.engines.engine(choice.engine)
        started = time.monotonic()
        try:
            audio = await self.slots.run(
                SYNTHESIS,
                lambda: engine.synthesize(text, choice),
                on_place=on_place,
                budget_s=_PIECE_BUDGET_S,
            )
        except AppError:
            raise
        except TimeoutError as error:
            raise SpeechEngineFailed(
                f"the {choice.engine} engine took over {_PIECE_BUDGET_S:.0f} s on one piece"
            ) from error
        except Exception as error:
            log.exception("speech synthesis failed", extra={"engine": choice.engine})
            raise SpeechEngineFailed(
                f"the {choice.engine} engine failed to speak this text"
            ) from error
        log.debug(
            "synthesised",
            extra={
                "engine": choice.engine,
                "chars": len(text),
                "audio_s": round(audio.duration_s, 2),
                "took_s": round(time.monotonic() - started, 3),
            },
        )
        return audio

    async def sample(self, user: UserRecord, choice: VoiceChoice, text: str | None) -> bytes:
        """The "hear it" sample: a WAV file of `text` (or a greeting) in the voice."""
        self.require()
        self.check_choice(choice)
        await self.rate_limit(user)
        self.check_room()
        audio = await self.synthesize((text or "").strip() or SAMPLE_TEXT, choice)
        return await bounded(
            to_wav, audio, budget_s=self._settings.cpu_budget_s, what="writing the sample"
        )
