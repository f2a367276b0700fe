"""The embedded model, for real: xllamacpp serving SmolLM2-135M-Instruct."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from conftest import eventually
from personae.errors import ModelFileError
from personae.llm.base import (
    ChatTurn,
    ContextOverflowError,
    SamplingParams,
    TransientBackendError,
)
from personae.llm.embedded import EmbeddedServer, start_embedded_provider
from personae.llm.openai_compat import OpenAICompatProvider

pytestmark = pytest.mark.asyncio(loop_scope="module")

SHORT = SamplingParams(max_tokens=16, temperature=0.0, seed=1)
GREETING = [ChatTurn("system", "You are a friendly pirate."), ChatTurn("user", "Say hello.")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def embedded(model_path: Path) -> AsyncIterator[tuple[EmbeddedServer, OpenAICompatProvider]]:
    server, provider = await start_embedded_provider(model_path, context_length=1024, slots=1)
    yield server, provider
    await server.stop()


async def test_streams_a_reply_in_pieces(
    embedded: tuple[EmbeddedServer, OpenAICompatProvider],
) -> None:
    _, provider = embedded
    async with aclosing(provider.stream_chat(GREETING, SHORT)) as stream:
        pieces = [piece async for piece in stream]
    assert len(pieces) >= 3
    assert "".join(pieces).strip()


async def test_health_and_token_count(
    embedded: tuple[EmbeddedServer, OpenAICompatProvider],
) -> None:
    server, provider = embedded
    # A probe gives up after 5 s; on a machine busy with other test workers one may,
    # so the server must answer healthy within a few tries.
    assert await eventually(provider.health, "the server answers healthy", 30.0, 0.5) is True
    assert (provider.slots, provider.context_length) == (1, 1024)
    assert server.base_url.startswith("http://127.0.0.1:")
    count = await provider.count_tokens("Hello world, how are you?")
    assert 3 <= count <= 12


async def test_api_key_is_required(embedded: tuple[EmbeddedServer, OpenAICompatProvider]) -> None:
    server, _ = embedded
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    async with httpx.AsyncClient(base_url=server.base_url, trust_env=False) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            response = await client.post("/v1/chat/completions", json=body, headers=headers)
            assert response.status_code == 401
        assert (await client.post("/tokenize", json={"content": "x"})).status_code == 401


async def completion_timings(server: EmbeddedServer, messages: list[dict[str, str]]) -> Any:
    """Send a one-token chat completion directly and return llama.cpp's timings."""
    headers = {"Authorization": f"Bearer {server.api_key}"}
    body = {"messages": messages, "max_tokens": 1, "cache_prompt": True}
    # A generous timeout: on a busy machine the request may wait for the model's slot
    # (httpx's default 5 s failed once in CI); this checks the cache, not the speed.
    async with httpx.AsyncClient(
        base_url=server.base_url, headers=headers, trust_env=False, timeout=60
    ) as c:
        response = await c.post("/v1/chat/completions", json=body)
    return response.json()["timings"]


async def test_prompt_cache_is_reused(
    embedded: tuple[EmbeddedServer, OpenAICompatProvider],
) -> None:
    server, _ = embedded
    messages = [{"role": "user", "content": "Tell me about the sea. " * 20}]
    await completion_timings(server, messages)
    timings = await completion_timings(server, messages)
    assert timings["cache_n"] > 100
    assert timings["prompt_n"] <= 2


async def test_cutting_old_turns_keeps_the_cache(
    embedded: tuple[EmbeddedServer, OpenAICompatProvider],
) -> None:
    """With n_cache_reuse the kept turns are shifted in the KV cache, not recomputed."""
    server, _ = embedded
    system = {"role": "system", "content": "You keep the lighthouse."}
    turns = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"Turn {i}: " + "waves " * 30}
        for i in range(10)
    ]
    await completion_timings(server, [system, *turns])
    timings = await completion_timings(server, [system, *turns[4:]])
    assert timings["cache_n"] > 150
    assert timings["prompt_n"] < 20


async def test_prompt_longer_than_the_context(
    embedded: tuple[EmbeddedServer, OpenAICompatProvider],
) -> None:
    _, provider = embedded
    turns = [ChatTurn("user", "word " * 3000)]
    with pytest.raises(ContextOverflowError) as caught:
        async for _ in provider.stream_chat(turns, SHORT):
            pass
    assert caught.value.context_length == 1024


async def test_stop_cuts_running_streams_quickly(model_path: Path) -> None:
    server, provider = await start_embedded_provider(model_path, context_length=512, slots=1)
    started = asyncio.Event()

    async def consume() -> None:
        long = SamplingParams(max_tokens=400)
        async for _ in provider.stream_chat([ChatTurn("user", "Write a long story.")], long):
            started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 30)
    began = time.perf_counter()
    await server.stop()
    assert time.perf_counter() - began < 5  # deleting mid-stream would block ~30 s
    with pytest.raises(TransientBackendError):
        await task
    assert not server.running
    await server.stop()  # a second stop does nothing


async def test_unloadable_model_is_a_model_file_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(ModelFileError, match="could not load"):
        await EmbeddedServer.start(broken, verbosity=0)
    with pytest.raises(ModelFileError, match="does not exist"):
        await EmbeddedServer.start(tmp_path / "missing.gguf")
