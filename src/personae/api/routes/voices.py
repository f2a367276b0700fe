"""Voices and read-aloud: the voices list, a voice's sample, a reply spoken aloud."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Path, status
from fastapi.responses import Response
from starlette.responses import StreamingResponse

from personae.api.deps import ContainerDep, CurrentUser
from personae.api.schemas.voices import (
    ClipPublic,
    EnginePublic,
    SampleIn,
    SpeechPublic,
    VoiceChoicePublic,
    VoiceLimits,
    VoicePublic,
    VoicesPublic,
)
from personae.services.speech import SpeechState, clip_url
from personae.services.voices import choice_to_json

router = APIRouter(prefix="/api/v1", tags=["voice"])

_WAV: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
        "description": "16-bit mono PCM in a WAV file",
    }
}
_NO_STORE = {"Cache-Control": "no-store"}


@router.get("/voices")
async def list_voices(_user: CurrentUser, container: ContainerDep) -> VoicesPublic:
    """What this server can speak with; installed=false (and empty lists) without voice."""
    catalogue = container.voices.catalogue()
    return VoicesPublic(
        installed=catalogue.installed,
        transcription=catalogue.transcription,
        engines=[EnginePublic.model_validate(engine) for engine in catalogue.engines],
        voices=[VoicePublic.model_validate(voice) for voice in catalogue.voices],
        default=(
            VoiceChoicePublic.model_validate(choice_to_json(catalogue.default))
            if catalogue.default
            else None
        ),
        limits=VoiceLimits(
            audio_max_bytes=catalogue.audio_max_bytes,
            audio_max_seconds=catalogue.audio_max_seconds,
        ),
    )


@router.post("/voices/sample", response_class=Response, responses=_WAV)
async def hear_voice(body: SampleIn, user: CurrentUser, container: ContainerDep) -> Response:
    """The "hear it" sample of a voice choice, as a WAV file."""
    wav = await container.voices.sample(user, body.voice.choice(), body.text)
    return Response(wav, media_type="audio/wav", headers=_NO_STORE)


def _speech(state: SpeechState) -> SpeechPublic:
    return SpeechPublic(
        message_id=state.message_id,
        voice_key=state.voice_key,
        clips=[
            ClipPublic(
                index=clip.index,
                text=clip.text,
                url=clip_url(state.message_id, clip.index),
                duration_ms=clip.duration_ms,
                sample_rate=clip.sample_rate,
            )
            for clip in state.clips
        ],
        complete=state.complete,
    )


@router.post("/messages/{message_id}/speech", status_code=status.HTTP_202_ACCEPTED)
async def start_speech(message_id: str, user: CurrentUser, container: ContainerDep) -> SpeechPublic:
    """Read a reply aloud in its character's voice: each sentence is announced on the
    chat's stream (`speech`) as it is ready, also while the reply is being written."""
    return _speech(await container.speech.start(user, message_id))


@router.get("/messages/{message_id}/speech", response_class=StreamingResponse, responses=_WAV)
async def stream_speech(
    message_id: str, user: CurrentUser, container: ContainerDep
) -> StreamingResponse:
    """The reply spoken as one WAV stream (its length unknown in the header): each
    sentence's audio as soon as it is synthesised."""
    chunks = await container.speech.stream(user, message_id)
    return StreamingResponse(
        _until(chunks, container.stopping), media_type="audio/wav", headers=_NO_STORE
    )


async def _until(chunks: AsyncIterator[bytes], stop: asyncio.Event) -> AsyncIterator[bytes]:
    """The chunks, ended early when the server begins to stop (as the chat's event
    stream is): an open stream must not keep a stopping server waiting."""
    stopped = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            following = asyncio.ensure_future(anext(chunks))
            await asyncio.wait({following, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not following.done():
                following.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await following
                return
            try:
                yield following.result()
            except StopAsyncIteration:
                return
    finally:
        stopped.cancel()


@router.get("/messages/{message_id}/speech/{index}", response_class=Response, responses=_WAV)
async def get_speech_clip(
    message_id: str,
    index: Annotated[int, Path(ge=0, le=100_000)],
    user: CurrentUser,
    container: ContainerDep,
) -> Response:
    """One sentence of a reply's speech, as a WAV file (404 speech_not_ready before)."""
    wav = await container.speech.clip_wav(user, message_id, index)
    return Response(wav, media_type="audio/wav", headers={"Cache-Control": "private, no-cache"})
