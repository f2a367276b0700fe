"""A provider for any server that speaks the OpenAI chat API with streaming.

It drives the embedded llama.cpp server as well as a remote fleet (llama.cpp
server, vLLM, SGLang, Ollama, TGI). One `httpx.AsyncClient` is shared by all
streams so connections are reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from personae.errors import ConfigurationError
from personae.llm.base import (
    BackendUnreachable,
    ChatTurn,
    ContextOverflowError,
    PermanentBackendError,
    SamplingParams,
    StreamStats,
    TransientBackendError,
)
from personae.llm.prompt import approx_tokens

# How servers say "the prompt is too long" in a 400: llama.cpp's error type,
# OpenAI's code, vLLM's message.
_CONTEXT_OVERFLOW_MARKERS = (
    "exceed_context_size_error",
    "context_length_exceeded",
    "maximum context length",
    "exceeds the available context size",
)
# Statuses that say "not now" rather than "never".
_RETRYABLE_STATUSES = frozenset({408, 425, 429})
# Statuses of a /tokenize that the server does not have, or speaks another dialect of.
_NO_TOKENIZE_STATUSES = frozenset({400, 404, 405, 422, 501})
_MAX_MESSAGE_CHARS = 500
# A finish reason is a short word; a server sending more is cut (it is stored).
_MAX_FINISH_REASON_CHARS = 32
# How long the end of a stream's body is waited for after `[DONE]`.
_DRAIN_S = 0.25
# Idle connections are let go of before servers close theirs (uvicorn's default is
# 5 s), so that a request is not sent on a connection being closed.
_KEEPALIVE_S = 4.0


class _Done:
    """Marks the SSE `[DONE]` line."""


_DONE = _Done()


class OpenAICompatProvider:
    """Streams chat replies from an OpenAI-compatible server.

    `base_url` is the server's root (a trailing `/v1` is accepted). With
    `llama_cpp_extras` the request also carries llama.cpp's `cache_prompt` and
    `repeat_penalty`; turn it off for servers that reject unknown fields.
    `transport` replaces the network (tests, a simulated backend).
    """

    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        api_key: str | None = None,
        slots: int = 1,
        context_length: int = 2048,
        connect_timeout: float = 5.0,
        first_token_timeout: float = 60.0,
        between_tokens_timeout: float = 30.0,
        name: str | None = None,
        llama_cpp_extras: bool = True,
        trust_env: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = normalize_base_url(base_url)
        self.name = name or f"openai-compat@{urlsplit(self.base_url).netloc}"
        self.model = model
        self.slots = slots
        self.context_length = context_length
        self.first_token_timeout = first_token_timeout
        self.between_tokens_timeout = between_tokens_timeout
        self._llama_cpp_extras = llama_cpp_extras
        self._tokenize_supported = True
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # Reads of a stream are bounded by our own first/between-token deadlines,
        # so httpx only bounds connecting and writing there.
        self._stream_timeout = httpx.Timeout(None, connect=connect_timeout, write=connect_timeout)
        # A health probe must answer quickly or count as down.
        self._probe_timeout = httpx.Timeout(connect_timeout)
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(between_tokens_timeout, connect=connect_timeout),
            trust_env=trust_env,
            transport=transport,
            limits=httpx.Limits(keepalive_expiry=_KEEPALIVE_S),
        )

    def __repr__(self) -> str:
        return f"OpenAICompatProvider(name={self.name!r}, model={self.model!r})"

    async def stream_chat(
        self,
        turns: Sequence[ChatTurn],
        params: SamplingParams,
        *,
        cache_key: str | None = None,
        stats: StreamStats | None = None,
    ) -> AsyncGenerator[str, None]:
        """Yield the reply's text pieces as they arrive.

        `cache_key` is for the router's backend affinity; llama.cpp already
        picks the slot whose cached prompt is most similar. Close the iterator
        (`contextlib.aclosing`) when stopping early so the server stops too.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.first_token_timeout
        request = self._client.build_request(
            "POST",
            "/v1/chat/completions",
            json=self._chat_body(turns, params),
            timeout=self._stream_timeout,
        )
        response = await self._send(request, deadline)
        try:
            if response.is_error:
                raise await self._error_of(response, deadline)
            lines = response.aiter_lines()
            waited = self.first_token_timeout
            while True:
                line = await self._next_line(lines, deadline, waited)
                event = _parse_sse_line(line)
                if event is _DONE:
                    await _read_to_end(lines)
                    return
                if stats is not None and isinstance(event, dict):
                    _record_usage(stats, event)
                piece = _delta_text(self.name, event)
                if piece:
                    yield piece
                    # Measured from when the consumer asks again: a slow consumer
                    # (a database write) is not a slow backend.
                    waited = self.between_tokens_timeout
                    deadline = loop.time() + waited
        finally:
            await response.aclose()

    async def count_tokens(self, text: str) -> int:
        """Count tokens with llama.cpp's `/tokenize`, or estimate when the server lacks it."""
        if not self._tokenize_supported:
            return approx_tokens(text)
        try:
            response = await self._client.post("/tokenize", json={"content": text})
        except httpx.TransportError as error:
            raise _transport_error(self.name, error) from error
        if response.status_code in _NO_TOKENIZE_STATUSES:
            self._tokenize_supported = False
            return approx_tokens(text)
        if response.is_error:
            raise _status_error(self.name, response)
        tokens = (_load_json_object(response.text) or {}).get("tokens")
        return len(tokens) if isinstance(tokens, list) else approx_tokens(text)

    async def health(self) -> bool:
        """Return True when `/health` (or, lacking it, `/v1/models`) answers 200."""
        try:
            response = await self._client.get("/health", timeout=self._probe_timeout)
            if response.status_code == 404:
                response = await self._client.get("/v1/models", timeout=self._probe_timeout)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def aclose(self) -> None:
        """Close all connections, cutting streams still running."""
        await self._client.aclose()

    def _chat_body(self, turns: Sequence[ChatTurn], params: SamplingParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": turn.role, "content": turn.content} for turn in turns],
            "stream": True,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if params.frequency_penalty:
            body["frequency_penalty"] = params.frequency_penalty
        if params.presence_penalty:
            body["presence_penalty"] = params.presence_penalty
        # Ask for usage in the last chunk (OpenAI, vLLM, SGLang): the cached share.
        body["stream_options"] = {"include_usage": True}
        if self._llama_cpp_extras:
            # Reuse the KV cache of the longest common prefix with the slot's last prompt.
            body["cache_prompt"] = True
            body["repeat_penalty"] = params.repeat_penalty
            if params.dry_multiplier:
                body["dry_multiplier"] = params.dry_multiplier
        return body

    async def _send(self, request: httpx.Request, deadline: float) -> httpx.Response:
        try:
            async with asyncio.timeout_at(deadline):
                try:
                    return await self._client.send(request, stream=True)
                except httpx.RemoteProtocolError:
                    # A kept-alive connection the server closed as it was reused (the
                    # request was never read: llama.cpp's server closes them after a
                    # number of requests). Once more, on a new connection.
                    return await self._client.send(request, stream=True)
        except TimeoutError as error:
            raise TransientBackendError(
                f"{self.name} did not answer within {self.first_token_timeout:g} s"
            ) from error
        except httpx.TransportError as error:
            raise _transport_error(self.name, error) from error

    async def _error_of(self, response: httpx.Response, deadline: float) -> Exception:
        try:
            async with asyncio.timeout_at(deadline):
                await response.aread()
        except (TimeoutError, httpx.TransportError):
            # The status alone still says whether a retry may help.
            response = httpx.Response(response.status_code, text="(no readable body)")
        return _status_error(self.name, response)

    async def _next_line(self, lines: AsyncIterator[str], deadline: float, waited: float) -> str:
        try:
            async with asyncio.timeout_at(deadline):
                return await anext(lines)
        except StopAsyncIteration as error:
            raise TransientBackendError(f"{self.name} ended the stream early") from error
        except TimeoutError as error:
            raise TransientBackendError(f"{self.name} sent no token for {waited:g} s") from error
        except httpx.TransportError as error:
            raise _transport_error(self.name, error) from error


async def _read_to_end(lines: AsyncIterator[str]) -> None:
    """Read what follows `[DONE]` (the end of the chunked body, normally already
    here): a response closed before its end closes its connection too, and the
    next reply would wait for a new one."""
    with contextlib.suppress(TimeoutError, httpx.HTTPError):
        async with asyncio.timeout(_DRAIN_S):
            async for _ in lines:
                pass


def _record_usage(stats: StreamStats, event: dict[str, Any]) -> None:
    """Usage as OpenAI-compatible servers report it, or llama.cpp's own timings, and
    the finish reason of the choice that ends (passed through as the server says it;
    the usage chunk after it has no choices and leaves it)."""
    choices = event.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        reason = choices[0].get("finish_reason")
        if isinstance(reason, str) and reason:
            stats.finish_reason = reason[:_MAX_FINISH_REASON_CHARS]
    usage = event.get("usage")
    if isinstance(usage, dict):
        stats.prompt_tokens = _int_or_none(usage.get("prompt_tokens")) or stats.prompt_tokens
        stats.completion_tokens = _int_or_none(usage.get("completion_tokens"))
        details = usage.get("prompt_tokens_details")
        if isinstance(details, dict) and details.get("cached_tokens") is not None:
            stats.cached_tokens = _int_or_none(details.get("cached_tokens"))
    timings = event.get("timings")
    if isinstance(timings, dict) and timings.get("cache_n") is not None:
        cached = _int_or_none(timings.get("cache_n")) or 0
        fresh = _int_or_none(timings.get("prompt_n")) or 0
        stats.cached_tokens = cached
        stats.prompt_tokens = cached + fresh


def normalize_base_url(
    base_url: str, what: str = "backend URL", example: str = "http://127.0.0.1:8080"
) -> str:
    """An OpenAI-compatible server's root: a trailing `/` or `/v1` dropped. Raises
    `ConfigurationError` naming `what` (the setting) when it is not an http(s) URL."""
    url = base_url.strip().rstrip("/")
    url = url.removesuffix("/v1")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"{what} {base_url!r} is not an http(s) URL; give e.g. {example}")
    return url


def _parse_sse_line(line: str) -> dict[str, Any] | _Done | None:
    """Return the JSON of a `data:` line, `_DONE`, or None for lines to skip."""
    field, _, value = line.partition(":")
    value = value.strip()
    if field == "data":
        if value == "[DONE]":
            return _DONE
        return _load_json_object(value)
    if field == "error" and value:
        # Older llama.cpp servers send a mid-stream failure as an `error:` line.
        return {"error": _load_json_object(value) or value}
    return None  # blank separators, `:` keep-alive comments, `event:`/`id:` fields


def _load_json_object(text: str) -> dict[str, Any] | None:
    try:
        loaded = json.loads(text)
    except ValueError:
        return None
    return loaded if isinstance(loaded, dict) else None


def _delta_text(backend: str, event: dict[str, Any] | _Done | None) -> str:
    if not isinstance(event, dict):
        return ""
    if "error" in event:
        raise _payload_error(backend, event, status=None)
    choices = event.get("choices") or []
    if not choices:
        return ""  # the usage/timings chunk at the end has no choices
    delta = choices[0].get("delta") or {}
    content = delta.get("content")
    return content if isinstance(content, str) else ""


def _transport_error(backend: str, error: httpx.TransportError) -> TransientBackendError:
    detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
        return BackendUnreachable(f"{backend} is unreachable ({detail})")
    return TransientBackendError(f"{backend} failed ({detail})")


def _status_error(backend: str, response: httpx.Response) -> Exception:
    payload = _load_json_object(response.text) or {"error": response.text}
    return _payload_error(backend, payload, status=response.status_code)


def _payload_error(backend: str, payload: dict[str, Any], *, status: int | None) -> Exception:
    """Build the backend error of an error body (a 4xx/5xx, or an error event mid-stream)."""
    error = payload.get("error", payload)
    details = error if isinstance(error, dict) else {}
    message = str(details.get("message") or payload.get("detail") or error)[:_MAX_MESSAGE_CHARS]
    if status is None and isinstance(details.get("code"), int):
        status = details["code"]
    text = f"{backend} answered {status if status is not None else 'an error'}: {message}"
    haystack = f"{details.get('type', '')} {details.get('code', '')} {message}".lower()
    if any(marker in haystack for marker in _CONTEXT_OVERFLOW_MARKERS):
        return ContextOverflowError(
            text,
            status=status,
            prompt_tokens=_int_or_none(details.get("n_prompt_tokens")),
            context_length=_int_or_none(details.get("n_ctx")),
        )
    if status is None or status >= 500 or status in _RETRYABLE_STATUSES:
        return TransientBackendError(text)
    return PermanentBackendError(text, status=status)


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) else None
