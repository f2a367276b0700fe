"""Speech and transcription on an operator's OpenAI-compatible server.

`OpenAISpeechEngine` asks `POST {speech_url}/v1/audio/speech` for WAV (OpenAI,
Kokoro-FastAPI, openedai-speech, LocalAI, Speaches answer it); a server that
refuses WAV is asked for raw PCM (OpenAI's `pcm`: 24 kHz 16-bit mono) from then
on. `OpenAITranscriber` sends WAV to `POST {transcription_url}/v1/audio/transcriptions`
(OpenAI, faster-whisper-server/Speaches, whisper.cpp's server, LocalAI).

As for chat backends (`llm/openai_compat.py`): one `httpx.AsyncClient` per
server, idle connections let go of before servers close theirs, and a request
sent on a kept-alive connection the server had just closed is sent once more.
Every failure is a `SpeechEngineFailed` naming the server and what it said; a
4xx about the voice is `UnknownVoice`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from personae.errors import AppError, SpeechEngineFailed, UnknownVoice
from personae.llm.openai_compat import normalize_base_url
from personae.voice.base import Audio, Transcript, VoiceChoice, VoiceInfo
from personae.voice.wav import from_wav, resample, to_wav

ENGINE_NAME = "openai"
# OpenAI's `pcm` format: raw 16-bit little-endian mono at 24 kHz.
PCM_SAMPLE_RATE = 24_000
# What a speech recogniser needs; recordings above it are sent resampled (smaller).
TRANSCRIPTION_SAMPLE_RATE = 16_000
# Idle connections are let go of before servers close theirs (uvicorn's default is 5 s).
_KEEPALIVE_S = 4.0
_MAX_MESSAGE_CHARS = 300
# An answer larger than this is not speech of a sentence (10 minutes at 48 kHz).
_MAX_ANSWER_BYTES = 64 * 1_048_576
_AUTH_STATUSES = frozenset({401, 403})
# How servers label the raw PCM they answer to `response_format: pcm`.
_RAW_PCM_TYPES = frozenset({"audio/pcm", "audio/l16", "application/octet-stream", ""})
# Words of a 4xx that say the server has no such voice.
_VOICE_MARKERS = ("voice",)
# Words of a 4xx that say the server cannot write the format asked for.
_FORMAT_MARKERS = ("response_format", "wav")


def server_root(url: str, setting: str) -> str:
    """The root of a speech or transcription server (see `normalize_base_url`)."""
    return normalize_base_url(url, setting, "http://127.0.0.1:8880")


def voice_names(listed: str) -> list[str]:
    """The voices of `PERSONAE_SPEECH_VOICES` (comma-separated), in order, once each."""
    names: list[str] = []
    for name in (part.strip() for part in listed.split(",")):
        if name and name not in names:
            names.append(name)
    return names


class _AudioServer:
    """An OpenAI-compatible audio endpoint's client: the requests and what their
    failures mean."""

    def __init__(
        self,
        base_url: str,
        *,
        setting: str,
        api_key: str | None,
        connect_timeout: float,
        timeout: float,
        trust_env: bool,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self.base_url = server_root(base_url, setting)
        self.label = f"the server at {urlsplit(self.base_url).netloc}"
        self.timeout = timeout
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            # A read that stalls fails at `timeout`; the whole request is bounded by it too.
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            trust_env=trust_env,
            transport=transport,
            limits=httpx.Limits(keepalive_expiry=_KEEPALIVE_S),
        )

    async def post(self, path: str, **request: Any) -> tuple[httpx.Response, bytes]:
        """The answer to a POST and its body (read whole, bounded in size and time)."""
        built = self._client.build_request("POST", path, **request)
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._send(built)
                try:
                    body = await _read_bounded(response)
                finally:
                    await response.aclose()
        except TimeoutError as error:
            raise SpeechEngineFailed(
                f"{self.label} did not answer {path} within {self.timeout:g} s"
            ) from error
        except httpx.TransportError as error:
            raise SpeechEngineFailed(
                f"{self.label} failed on {path} ({_describe(error)})"
            ) from error
        return response, body

    async def _send(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._client.send(request, stream=True)
        except httpx.RemoteProtocolError:
            # A kept-alive connection the server closed as it was reused (the request
            # was never read). Once more, on a new connection.
            return await self._client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise SpeechEngineFailed(f"{self.label} is unreachable ({_describe(error)})") from error

    def failure(self, path: str, status: int, body: bytes, *, key_setting: str) -> AppError:
        """The error of an answer with an error status."""
        message = error_message(body)
        text = f"{self.label} answered {path} with {status}: {message}"
        if status in _AUTH_STATUSES:
            return SpeechEngineFailed(f"{text} (check {key_setting})")
        return SpeechEngineFailed(text)

    async def close(self) -> None:
        await self._client.aclose()


async def _read_bounded(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > _MAX_ANSWER_BYTES:
            raise SpeechEngineFailed(
                f"the answer of {response.request.url} is over {_MAX_ANSWER_BYTES} bytes"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def error_message(body: bytes) -> str:
    """What an error answer says: OpenAI's `{"error": {"message"}}`, FastAPI's
    `{"detail"}` (a text or a list of field errors), or the text itself."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        payload = json.loads(text)
    except ValueError:
        return text[:_MAX_MESSAGE_CHARS] or "(no message)"
    message: Any = payload
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict):
            message = error.get("message") or error
        elif error:
            message = error
        elif "detail" in payload:
            message = payload["detail"]
        elif "message" in payload:
            message = payload["message"]
    if isinstance(message, list):
        message = "; ".join(_field_error(item) for item in message)
    return str(message)[:_MAX_MESSAGE_CHARS]


def _field_error(item: object) -> str:
    """One of FastAPI's field errors: `{"loc": ["body", "voice"], "msg": ...}`."""
    if not isinstance(item, dict):
        return str(item)
    where = ".".join(str(part) for part in item.get("loc") or [] if part != "body")
    return f"{where}: {item.get('msg', '')}" if where else str(item.get("msg", item))


def _mentions(message: str, markers: Sequence[str]) -> bool:
    lowered = message.lower()
    return any(marker in lowered for marker in markers)


class OpenAISpeechEngine:
    """Text to speech on an OpenAI-compatible `/v1/audio/speech`.

    The server has no list of its voices: they are `voices` (PERSONAE_SPEECH_VOICES).
    No blends; `speed` is sent as the server's `speed`. `transport` replaces the
    network (tests)."""

    name = ENGINE_NAME
    blendable = False

    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        voices: Sequence[str],
        api_key: str | None = None,
        connect_timeout: float = 5.0,
        timeout: float = 60.0,
        trust_env: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.model = model
        self._voices = list(voices)
        self._format = "wav"
        self._server = _AudioServer(
            base_url,
            setting="PERSONAE_SPEECH_URL",
            api_key=api_key,
            connect_timeout=connect_timeout,
            timeout=timeout,
            trust_env=trust_env,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"OpenAISpeechEngine({self._server.base_url!r}, model={self.model!r})"

    def voices(self) -> list[VoiceInfo]:
        where = urlsplit(self._server.base_url).netloc
        return [
            VoiceInfo(
                id=voice,
                engine=ENGINE_NAME,
                name=voice.replace("_", " ").title(),
                language="",
                description=f"{self.model} on the speech server at {where}",
            )
            for voice in self._voices
        ]

    async def synthesize(self, text: str, choice: VoiceChoice) -> Audio:
        if choice.voice not in self._voices:
            raise UnknownVoice(
                f"the speech server offers no voice '{choice.voice}' "
                f"(PERSONAE_SPEECH_VOICES: {', '.join(self._voices) or 'none'})"
            )
        if choice.blend:
            raise UnknownVoice("voices of the speech server cannot be blended")
        try:
            return await self._synthesize(text, choice)
        except _FormatRefused:
            if self._format == "pcm":
                raise
            # The server cannot write WAV: raw PCM is the other format every
            # OpenAI-compatible server knows; kept for the next sentences.
            self._format = "pcm"
            return await self._synthesize(text, choice)

    async def _synthesize(self, text: str, choice: VoiceChoice) -> Audio:
        path = "/v1/audio/speech"
        body = {
            "model": self.model,
            "input": text,
            "voice": choice.voice,
            "speed": choice.speed,
            "response_format": self._format,
        }
        response, content = await self._server.post(path, json=body)
        if response.is_error:
            message = error_message(content)
            if response.status_code in (400, 404, 422):
                if _mentions(message, _FORMAT_MARKERS) and self._format == "wav":
                    raise _FormatRefused(message)
                if _mentions(message, _VOICE_MARKERS):
                    raise UnknownVoice(
                        f"{self._server.label} has no voice '{choice.voice}' ({message})"
                    )
            raise self._server.failure(
                path, response.status_code, content, key_setting="PERSONAE_SPEECH_API_KEY"
            )
        return self._audio_of(response, content)

    def _audio_of(self, response: httpx.Response, content: bytes) -> Audio:
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content[:4] == b"RIFF" and content[8:12] == b"WAVE":
            try:
                return from_wav(content)
            except AppError as error:
                raise SpeechEngineFailed(
                    f"{self._server.label} answered a WAV file that cannot be read: {error.detail}"
                ) from error
        if self._format == "pcm" and kind in _RAW_PCM_TYPES:
            return Audio(content[: len(content) - len(content) % 2], PCM_SAMPLE_RATE)
        raise SpeechEngineFailed(
            f"{self._server.label} answered {kind or 'a body of no type'} "
            f"({len(content)} bytes), not the {self._format} audio asked for; "
            "Personae reads WAV or raw PCM from a speech server"
        )

    async def close(self) -> None:
        await self._server.close()


class _FormatRefused(Exception):
    """The server answered a 4xx about `response_format`."""


class OpenAITranscriber:
    """Speech to text on an OpenAI-compatible `/v1/audio/transcriptions` (the audio
    sent as a WAV file, at 16 kHz at most)."""

    name = ENGINE_NAME

    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        api_key: str | None = None,
        connect_timeout: float = 5.0,
        timeout: float = 120.0,
        trust_env: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.model = model
        self._server = _AudioServer(
            base_url,
            setting="PERSONAE_TRANSCRIPTION_URL",
            api_key=api_key,
            connect_timeout=connect_timeout,
            timeout=timeout,
            trust_env=trust_env,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"OpenAITranscriber({self._server.base_url!r}, model={self.model!r})"

    async def transcribe(self, audio: Audio, *, language: str | None = None) -> Transcript:
        path = "/v1/audio/transcriptions"
        if audio.sample_rate > TRANSCRIPTION_SAMPLE_RATE:
            audio = await asyncio.to_thread(resample, audio, TRANSCRIPTION_SAMPLE_RATE)
        fields = {"model": self.model, "response_format": "json"}
        if language:
            fields["language"] = language
        files = {"file": ("speech.wav", to_wav(audio), "audio/wav")}
        response, content = await self._server.post(path, data=fields, files=files)
        if response.is_error:
            raise self._server.failure(
                path, response.status_code, content, key_setting="PERSONAE_TRANSCRIPTION_API_KEY"
            )
        text, heard = self._text_of(response, content)
        return Transcript(text=text, language=language or heard, duration_s=audio.duration_s)

    def _text_of(self, response: httpx.Response, content: bytes) -> tuple[str, str]:
        """The text and the language the server heard: `{"text", "language"?}`, or the
        plain text some servers answer whatever was asked."""
        decoded = content.decode("utf-8", errors="replace")
        kind = response.headers.get("content-type", "")
        try:
            payload = json.loads(decoded)
        except ValueError:
            if "json" in kind:
                raise SpeechEngineFailed(
                    f"{self._server.label} answered JSON that cannot be read"
                ) from None
            return decoded.strip(), ""
        if isinstance(payload, dict) and isinstance(payload.get("text"), str):
            heard = payload.get("language")
            return str(payload["text"]).strip(), heard if isinstance(heard, str) else ""
        raise SpeechEngineFailed(f"{self._server.label} answered no text: {decoded[:120]!r}")

    async def close(self) -> None:
        await self._server.close()
