"""SIGTERM ends a real `personae serve` within its bound, with streams open and a
reply running, and the reply is kept (finished, or back in line with its text)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from conftest import PASSWORD, REDIS_URL, simulated_backend

GRACE_S = 2.0
# The bound the server promises: the grace, then at most 5 s more.
EXIT_BOUND_S = GRACE_S + 5.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _environment(tmp_path: Path, database_url: str, backend_url: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("PERSONAE_")}
    env.update(
        PERSONAE_ENVIRONMENT="development",
        PERSONAE_DATA_DIR=str(tmp_path / "data"),
        PERSONAE_DATABASE_URL=database_url,
        PERSONAE_BACKEND_URL=backend_url,
        PERSONAE_GRACEFUL_SHUTDOWN_S=str(GRACE_S),
        PERSONAE_MAX_REPLY_TOKENS="400",
        PERSONAE_SEED_DEMO="false",
        PERSONAE_LOG_JSON="false",
        PERSONAE_EMBEDDING_MODEL="lexical",
        PERSONAE_VOICE="off",  # voice is tested in tests/voice
    )
    if REDIS_URL:
        env["PERSONAE_REDIS_URL"] = REDIS_URL
        env["PERSONAE_REDIS_PREFIX"] = f"shutdown-{os.getpid()}-{time.monotonic_ns()}"
    return env


class Server:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log, self.port = env, log, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as sink:
            return subprocess.Popen(
                [sys.executable, "-m", "personae.cli", "serve", "--port", str(self.port)],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=sink,
            )

    async def start(self) -> subprocess.Popen[bytes]:
        self.process = self._spawn()
        async with httpx.AsyncClient(base_url=self.url) as client:
            for _ in range(600):
                assert self.process.poll() is None, self.output()
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        return self.process
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError("the server did not become ready: " + self.output())

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


async def _sse(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "event" in fields:
                yield fields["event"], json.loads(fields["data"])
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value


class Watcher:
    """One client's stream of the chat: the reply's text as the tokens arrive."""

    def __init__(self, client: httpx.AsyncClient, chat_id: str) -> None:
        self.text = ""
        self.tokens = 0
        self._grew = asyncio.Event()
        self.task = asyncio.create_task(self._watch(client, chat_id))

    async def _watch(self, client: httpx.AsyncClient, chat_id: str) -> None:
        try:
            async with client.stream("GET", f"/api/v1/chats/{chat_id}/events") as response:
                assert response.status_code == 200
                async for name, data in _sse(response):
                    if name == "token" and data["offset"] == len(self.text):
                        self.text += data["text"]
                        self.tokens += 1
                        self._grew.set()
        except httpx.TransportError:
            pass  # the server went away under the stream: it ended all the same

    async def tokens_beyond(self, count: int, timeout_s: float = 30) -> None:
        async with asyncio.timeout(timeout_s):
            while self.tokens <= count:
                self._grew.clear()
                await self._grew.wait()


async def _clients_come_and_go(client: httpx.AsyncClient, chat_id: str, count: int) -> None:
    """Streams that leave at random moments, many while their read waits for a token."""
    chooser = random.Random(15)
    passing = [Watcher(client, chat_id) for _ in range(count)]
    for watcher in passing:
        await asyncio.sleep(chooser.uniform(0, 0.1))
        watcher.task.cancel()
    await asyncio.gather(*(watcher.task for watcher in passing), return_exceptions=True)


async def _signed_up(client: httpx.AsyncClient) -> str:
    registered = await client.post(
        "/api/v1/auth/register", json={"username": "alice", "password": PASSWORD}
    )
    client.headers["X-CSRF-Token"] = registered.json()["csrf_token"]
    character = await client.post("/api/v1/characters", json={"name": "Storyteller"})
    chat = await client.post("/api/v1/chats", json={"character_id": character.json()["id"]})
    return str(chat.json()["id"])


async def _stop(process: subprocess.Popen[bytes]) -> tuple[int | None, float]:
    """SIGTERM, then the exit status (None if still running past the bound) and the time."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        code = await asyncio.to_thread(process.wait, EXIT_BOUND_S + 5)
    except subprocess.TimeoutExpired:
        code = None
    return code, time.monotonic() - started


async def _reply(client: httpx.AsyncClient, chat_id: str) -> dict[str, Any]:
    history = await client.get(f"/api/v1/chats/{chat_id}/messages", params={"limit": 10})
    return next(m for m in history.json()["items"] if m["role"] == "assistant")


async def test_sigterm_ends_the_server_in_its_bound_with_a_stream_open_and_a_reply_running(
    tmp_path: Path, database_url: str
) -> None:
    async with simulated_backend(tokens_per_second=8, first_token_ms=50) as backend_url:
        server = Server(_environment(tmp_path, database_url, backend_url), tmp_path / "log")
        process = await server.start()
        client = httpx.AsyncClient(base_url=server.url, timeout=10)
        try:
            chat_id = await _signed_up(client)
            staying = Watcher(client, chat_id)
            sent = await client.put(
                f"/api/v1/chats/{chat_id}/messages/m1", json={"content": "Tell me a long story."}
            )
            assert sent.status_code == 202, sent.text
            await staying.tokens_beyond(2)
            for _wave in range(3):
                await _clients_come_and_go(client, chat_id, 40)
            # The clients that left broke nothing: the reply still streams to the one that stayed.
            await staying.tokens_beyond(staying.tokens + 3, timeout_s=10)

            code, took = await _stop(process)
            assert code is not None, f"still running {took:.1f} s after SIGTERM"
            assert took <= EXIT_BOUND_S, f"{took:.1f} s to exit: {server.output()}"
            assert code == 0, server.output()
            async with asyncio.timeout(5):
                await staying.task  # the open stream was ended, not left hanging
            streamed = staying.text

            await server.start()  # same database: the reply was kept
            reply = await _reply(client, chat_id)
            assert reply["status"] in {"complete", "queued", "generating"}, reply
            assert reply["content"].startswith(streamed), (reply["content"], streamed)
        finally:
            server.kill()
            await client.aclose()
