"""Talking instead of typing: a recording in, its words out (docs/voice.md)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from personae.api.deps import ContainerDep, CurrentUser
from personae.api.schemas.transcriptions import TranscriptionPublic

router = APIRouter(prefix="/api/v1/speech", tags=["voice"])

# Bodies on this path may be as large as PERSONAE_AUDIO_MAX_BYTES and a multipart
# envelope (see app.py).
AUDIO_PATHS = re.compile(r"/api/v1/speech/transcriptions")
ENVELOPE_BYTES = 64 * 1024


@router.post("/transcriptions")
async def transcribe(
    user: CurrentUser,
    container: ContainerDep,
    file: Annotated[
        UploadFile,
        File(description="A recording: audio/webm, audio/ogg, audio/wav, audio/mp4, audio/mpeg"),
    ],
    language: Annotated[str, Form(pattern=r"^[a-z]{2,3}$")] = "en",
) -> TranscriptionPublic:
    transcript = await container.transcription.transcribe_upload(user, file.read, language=language)
    return TranscriptionPublic(
        text=transcript.text.strip(),
        language=transcript.language,
        duration_s=round(transcript.duration_s, 2),
    )
