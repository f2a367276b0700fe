"""Speech to text for talking instead of typing: a recording (push-to-talk), or one
turn of a call.

The text is not sent anywhere: the user reads it, fixes it and sends it as typed
text (moderated then), or the call sends it through the normal send path. Every
transcription waits for a TRANSCRIPTION slot (voice_slots.py) and counts against
`transcription_rate_per_user`; decoding and recognition run in threads.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from personae.errors import (
    AppError,
    AudioTooLarge,
    AudioUnreadable,
    NoSpeechHeard,
    SpeechEngineFailed,
)
from personae.offload import bounded
from personae.services.ratelimit import RateLimiter
from personae.services.voice_slots import TRANSCRIPTION, PlaceListener, VoiceSlots
from personae.settings import Settings
from personae.storage.repos.accounts import UserRecord
from personae.voice.base import Audio, Transcript
from personae.voice.decode import decode_recording
from personae.voice.factory import VoiceEngines

log = logging.getLogger("personae.transcription")

_READ_CHUNK = 64 * 1024
# Decoding a few minutes of compressed audio takes well under a second; this bounds
# a recording built to make the decoder work far harder than its length suggests.
_DECODE_BUDGET_S = 20.0

ReadChunk = Callable[[int], Awaitable[bytes]]


class TranscriptionService:
    def __init__(
        self, engines: VoiceEngines, slots: VoiceSlots, limiter: RateLimiter, settings: Settings
    ) -> None:
        self._engines = engines
        self._slots = slots
        self._limiter = limiter
        self._settings = settings

    async def transcribe_upload(
        self, user: UserRecord, read: ReadChunk, *, language: str
    ) -> Transcript:
        """The words of an uploaded recording (webm, ogg, opus, mp4, mp3, wav).

        `read(n)` gives the next at most `n` bytes of the file (b"" at its end); more
        than `audio_max_bytes` is refused as it is read (AudioTooLarge), longer than
        `audio_max_seconds` once decoded (AudioTooLong); a recording with no words
        raises NoSpeechHeard.
        """
        self._engines.require()
        await self.count(user)
        recording = await self._read_limited(read)
        if not recording:
            raise AudioUnreadable("The file is empty.")
        audio = await bounded(
            lambda: decode_recording(recording, max_seconds=self._settings.audio_max_seconds),
            budget_s=_DECODE_BUDGET_S,
            what="decoding the recording",
            input_at_fault=True,
        )
        return await self.transcribe(audio, language=language)

    def check_ready(self) -> None:
        """VoiceNotInstalled / VoiceFilesMissing unless transcription can run here."""
        self._engines.transcriber()

    async def count(self, user: UserRecord) -> None:
        """One transcription against the user's rate limit (RateLimited past it)."""
        await self._limiter.hit(
            "transcribe-user", user.id, self._settings.transcription_rate_per_user
        )

    async def transcribe(
        self, audio: Audio, *, language: str | None, on_place: PlaceListener | None = None
    ) -> Transcript:
        """The words of `audio`, once a transcription slot is free (`on_place` is told
        the place in line while it waits; VoiceBusy when the line is full). An engine's
        own failure is `speech_engine_failed`."""
        transcriber = self._engines.transcriber()
        try:
            transcript = await self._slots.run(
                TRANSCRIPTION,
                lambda: transcriber.transcribe(audio, language=language),
                on_place=on_place,
            )
        except AppError:
            raise
        except Exception as error:
            log.exception("transcription failed")
            raise SpeechEngineFailed("the transcription engine failed on this audio") from error
        if not transcript.text.strip():
            raise NoSpeechHeard("No words were heard in the recording; speak closer or louder.")
        return transcript

    async def _read_limited(self, read: ReadChunk) -> bytes:
        limit = self._settings.audio_max_bytes
        parts: list[bytes] = []
        size = 0
        while chunk := await read(_READ_CHUNK):
            size += len(chunk)
            if size > limit:
                raise AudioTooLarge(
                    f"The recording is larger than {limit} bytes; send a shorter one."
                )
            parts.append(chunk)
        return b"".join(parts)
