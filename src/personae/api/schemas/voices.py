"""Bodies of the voice endpoints: voices, a voice choice, samples, read-aloud."""

from __future__ import annotations

from pydantic import Field, model_validator

from personae.api.schemas.common import Input, Output
from personae.voice.base import VoiceChoice

MIN_SPEED, MAX_SPEED = 0.5, 2.0
MAX_BLEND = 3
SAMPLE_MAX_CHARS = 300


class BlendPart(Input):
    voice: str = Field(min_length=1, max_length=64)
    weight: float = Field(gt=0.0, lt=1.0, description="Its share of the sound (above 0).")


class VoiceChoiceIn(Input):
    """A voice as a character's creator picks it (blend: only on blendable engines)."""

    engine: str = Field(min_length=1, max_length=32, examples=["piper"])
    voice: str = Field(min_length=1, max_length=64, examples=["en_US-joe-medium"])
    speed: float = Field(default=1.0, ge=MIN_SPEED, le=MAX_SPEED)
    blend: list[BlendPart] = Field(
        default_factory=list,
        max_length=MAX_BLEND,
        description="Other voices of the same engine mixed in; the weights add up to "
        "less than 1 (the chosen voice keeps the rest).",
    )

    @model_validator(mode="after")
    def _weights_leave_room(self) -> VoiceChoiceIn:
        if sum(part.weight for part in self.blend) >= 1.0:
            raise ValueError("the blended voices' weights must add up to less than 1")
        return self

    def choice(self) -> VoiceChoice:
        return VoiceChoice(
            self.engine,
            self.voice,
            self.speed,
            tuple((part.voice, part.weight) for part in self.blend),
        )


class BlendPublic(Output):
    voice: str
    weight: float


class VoiceChoicePublic(Output):
    engine: str
    voice: str
    speed: float
    blend: list[BlendPublic]


class EnginePublic(Output):
    name: str
    ready: bool = Field(description="Its voice files are on the server: it can speak now.")
    blendable: bool


class VoicePublic(Output):
    id: str
    engine: str
    name: str
    language: str
    blendable: bool
    description: str


class VoiceLimits(Output):
    audio_max_bytes: int
    audio_max_seconds: float


class VoicesPublic(Output):
    installed: bool = Field(
        description="false: this server has no voice (the app hides voice controls)."
    )
    transcription: bool = Field(description="Recordings can be turned into text here.")
    engines: list[EnginePublic]
    voices: list[VoicePublic]
    default: VoiceChoicePublic | None = Field(
        description="The voice of characters that chose none (null without voice)."
    )
    limits: VoiceLimits


class SampleIn(Input):
    voice: VoiceChoiceIn
    text: str | None = Field(
        default=None,
        max_length=SAMPLE_MAX_CHARS,
        description="What to say (a greeting if left out).",
    )


class ClipPublic(Output):
    index: int
    text: str = Field(description="The words spoken in this clip.")
    url: str = Field(description="GET it for this clip's WAV.")
    duration_ms: int
    sample_rate: int


class SpeechPublic(Output):
    message_id: str
    voice_key: str = Field(description="Names the exact voice (engine, voice, speed, blend).")
    clips: list[ClipPublic] = Field(description="The clips ready so far, in order.")
    complete: bool = Field(description="Every sentence of the reply is spoken and stored.")
