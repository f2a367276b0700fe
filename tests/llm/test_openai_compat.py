"""The OpenAI-compatible provider against a closed port and scripted server answers."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

import httpx
import pytest

from conftest import simulated_backend
from personae.errors import ConfigurationError
from personae.llm.base import (
    ChatTurn,
    ContextOverflowError,
    PermanentBackendError,
    SamplingParams,
    TransientBackendError,
)
from personae.llm.openai_compat import OpenAICompatProvider

TURNS = [ChatTurn("system", "be brief"), ChatTurn("user", "hello")]
PARAMS = SamplingParams(max_tokens=8, stop=("\n",), seed=7)
Handler = Callable[[httpx.Request], httpx.Response]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def sse(*events: dict[str, Any] | str) -> bytes:
    lines = [f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events]
    return "".join(lines).encode()


def chunk(text: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


def provider(handler: Handler, **options: Any) -> OpenAICompatProvider:
    return OpenAICompatProvider(
        "http://backend.test/v1/",
        model="m",
        api_key="k",
        transport=httpx.MockTransport(handler),
        **options,
    )


async def collect(backend: OpenAICompatProvider) -> list[str]:
    async with aclosing(backend.stream_chat(TURNS, PARAMS)) as pieces:
        return [piece async for piece in pieces]


async def test_refused_connection_is_transient() -> None:
    backend = OpenAICompatProvider(f"http://127.0.0.1:{closed_port()}", model="m")
    try:
        with pytest.raises(TransientBackendError, match="unreachable"):
            await collect(backend)
        with pytest.raises(TransientBackendError):
            await backend.count_tokens("hello")
        assert await backend.health() is False
    finally:
        await backend.aclose()


async def test_streams_pieces_and_sends_the_request() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = sse(
            {"choices": [{"delta": {"role": "assistant", "content": None}}]},
            chunk("Hel"),
            chunk("lo"),
            {"choices": [], "usage": {"completion_tokens": 2}},
            "[DONE]",
        )
        return httpx.Response(200, content=b": keep-alive\n\n" + body)

    backend = provider(handler)
    assert await collect(backend) == ["Hel", "lo"]
    request = seen[0]
    assert request.url == "http://backend.test/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer k"
    body = json.loads(request.content)
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello"},
    ]
    assert body["stream"] is True
    assert body["cache_prompt"] is True
    assert body["repeat_penalty"] == pytest.approx(1.1)
    assert body["stop"] == ["\n"]
    assert body["seed"] == 7
    await backend.aclose()


async def test_without_llama_cpp_extras_only_openai_fields_are_sent() -> None:
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, content=sse(chunk("x"), "[DONE]"))

    backend = provider(handler, llama_cpp_extras=False)
    await collect(backend)
    assert "cache_prompt" not in bodies[0]
    assert "repeat_penalty" not in bodies[0]
    await backend.aclose()


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (500, {"error": {"message": "boom"}}, TransientBackendError),
        (503, {"error": {"message": "Loading model"}}, TransientBackendError),
        (429, {"error": {"message": "slow down"}}, TransientBackendError),
        (401, {"error": {"message": "Invalid API Key"}}, PermanentBackendError),
        (400, {"error": {"message": "bad temperature"}}, PermanentBackendError),
    ],
)
async def test_http_errors_are_mapped(
    status: int, body: dict[str, Any], error: type[Exception]
) -> None:
    backend = provider(lambda request: httpx.Response(status, json=body))
    with pytest.raises(error) as caught:
        await collect(backend)
    assert type(caught.value) is error
    assert body["error"]["message"] in str(caught.value)
    await backend.aclose()


async def test_context_overflow_is_recognised() -> None:
    # The body llama.cpp's server answers.
    body = {
        "error": {
            "code": 400,
            "message": "request (831 tokens) exceeds the available context size (512 tokens)",
            "type": "exceed_context_size_error",
            "n_prompt_tokens": 831,
            "n_ctx": 512,
        }
    }
    backend = provider(lambda request: httpx.Response(400, json=body))
    with pytest.raises(ContextOverflowError) as caught:
        await collect(backend)
    assert caught.value.status == 400
    assert (caught.value.prompt_tokens, caught.value.context_length) == (831, 512)
    await backend.aclose()


async def test_error_event_mid_stream() -> None:
    body = sse(chunk("a"), {"error": {"code": 500, "message": "decode failed"}})
    backend = provider(lambda request: httpx.Response(200, content=body))
    pieces: list[str] = []
    with pytest.raises(TransientBackendError, match="decode failed"):
        async for piece in backend.stream_chat(TURNS, PARAMS):
            pieces.append(piece)
    assert pieces == ["a"]
    await backend.aclose()


async def test_stream_cut_before_done_is_transient() -> None:
    backend = provider(lambda request: httpx.Response(200, content=sse(chunk("a"))))
    with pytest.raises(TransientBackendError, match="ended the stream early"):
        await collect(backend)
    await backend.aclose()


class Stalling(httpx.AsyncByteStream):
    """A body that sends `before` events, then stalls."""

    def __init__(self, before: list[bytes]) -> None:
        self.before = before

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.before:
            yield part
        await asyncio.sleep(30)


async def test_first_token_timeout() -> None:
    backend = provider(
        lambda request: httpx.Response(200, stream=Stalling([b": ping\n\n"])),
        first_token_timeout=0.2,
    )
    with pytest.raises(TransientBackendError, match=r"no token for 0\.2 s"):
        await collect(backend)
    await backend.aclose()


async def test_between_tokens_timeout() -> None:
    backend = provider(
        lambda request: httpx.Response(200, stream=Stalling([sse(chunk("a"))])),
        between_tokens_timeout=0.2,
    )
    pieces: list[str] = []
    with pytest.raises(TransientBackendError, match=r"no token for 0\.2 s"):
        async for piece in backend.stream_chat(TURNS, PARAMS):
            pieces.append(piece)
    assert pieces == ["a"]
    await backend.aclose()


async def test_count_tokens_uses_tokenize_then_falls_back() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/tokenize"
        assert json.loads(request.content) == {"content": "hello world"}
        return httpx.Response(200, json={"tokens": [1, 2]})

    backend = provider(handler)
    assert await backend.count_tokens("hello world") == 2
    await backend.aclose()

    calls: list[str] = []

    def missing(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(404, json={"detail": "Not Found"})

    backend = provider(missing)
    assert await backend.count_tokens("a" * 40) == 11
    assert await backend.count_tokens("a" * 40) == 11
    assert calls == ["/tokenize"]  # not asked again once known to be missing
    await backend.aclose()


async def test_health_falls_back_to_models() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404 if request.url.path == "/health" else 200, json={})

    backend = provider(handler)
    assert await backend.health() is True
    await backend.aclose()
    backend = provider(lambda request: httpx.Response(503, json={}))
    assert await backend.health() is False
    await backend.aclose()


def test_base_url_must_be_http() -> None:
    with pytest.raises(ConfigurationError):
        OpenAICompatProvider("localhost:8080", model="m")


async def test_streams_read_to_their_end_reuse_one_connection() -> None:
    """After `[DONE]` the rest of the body is read, so the connection goes back to the
    pool: the next reply does not wait for a new connection (or a TLS handshake)."""
    async with simulated_backend(tokens_per_second=2000) as url:
        backend = OpenAICompatProvider(url, model="m")
        try:
            for _ in range(3):
                assert len(await collect(backend)) == PARAMS.max_tokens
            async with httpx.AsyncClient(base_url=url) as probe:
                stats = (await probe.get("/simulation/stats")).json()
        finally:
            await backend.aclose()
    assert (stats["requests"], stats["connections"]) == (3, 1)


async def test_a_kept_alive_connection_closed_by_the_server_is_retried_once() -> None:
    """llama.cpp's server closes a kept-alive connection after some requests; a request
    sent on it gets no answer at all. That one is sent again on a new connection."""
    body = sse(chunk("hi"), "[DONE]")
    answer = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    requests = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        answered_here = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length:")
                )
                await reader.readexactly(length)
                requests += 1
                if answered_here == 1:
                    return  # the second request on a connection: closed, unanswered
                writer.write(answer)
                await writer.drain()
                answered_here += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    backend = OpenAICompatProvider(f"http://127.0.0.1:{port}", model="m")
    try:
        for _ in range(3):
            assert await collect(backend) == ["hi"]
    finally:
        await backend.aclose()
        server.close()
        await server.wait_closed()
    assert requests == 5  # 3 answered, 2 sent again after the silent close
