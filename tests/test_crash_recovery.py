"""`kill -9` of a real server while replies stream: nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import PASSWORD, REDIS_URL, ModelServer

FINAL = {"complete", "stopped", "failed"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """`personae serve` in its own process, with the embedded model."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as sink:
            return subprocess.Popen(
                [sys.executable, "-m", "personae.cli", "serve", "--port", str(self.port)],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=sink,
            )

    async def start(self) -> None:
        self.process = self._spawn()
        async with httpx.AsyncClient(base_url=self.url) as client:
            for _ in range(600):
                assert self.process.poll() is None, self.log.read_text()[-3000:]
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError("the server did not become ready: " + self.log.read_text()[-3000:])

    def kill_9(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture
def server_env(
    tmp_path: Path, database_url: str, model_server: ModelServer
) -> Iterator[dict[str, str]]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PERSONAE_")}
    env.update(
        PERSONAE_ENVIRONMENT="development",
        PERSONAE_DATA_DIR=str(tmp_path / "data"),
        PERSONAE_DATABASE_URL=database_url,
        PERSONAE_MODEL_PATH=str(model_server.model_path),
        PERSONAE_EMBEDDED_SLOTS="2",
        PERSONAE_MAX_REPLY_TOKENS="200",
        PERSONAE_JOB_LEASE_S="3",
        PERSONAE_SEED_DEMO="false",
        PERSONAE_LOG_JSON="false",
        PERSONAE_EMBEDDING_MODEL="lexical",  # nothing to fetch at each start
        PERSONAE_VOICE="off",  # voice is tested in tests/voice
    )
    if REDIS_URL:
        env["PERSONAE_REDIS_URL"] = REDIS_URL
        env["PERSONAE_REDIS_PREFIX"] = f"crash-{os.getpid()}"
    yield env


async def _history(client: httpx.AsyncClient, chat_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/chats/{chat_id}/messages", params={"limit": 200})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def test_kill_9_while_replies_stream_loses_nothing(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    server = ServerProcess(server_env, tmp_path / "server.log")
    await server.start()
    client = httpx.AsyncClient(base_url=server.url, timeout=30)
    try:
        registered = await client.post(
            "/api/v1/auth/register", json={"username": "alice", "password": PASSWORD}
        )
        client.headers["X-CSRF-Token"] = registered.json()["csrf_token"]
        character = await client.post("/api/v1/characters", json={"name": "Storyteller"})
        acknowledged: dict[str, tuple[str, str]] = {}
        for number in range(3):
            chat = await client.post("/api/v1/chats", json={"character_id": character.json()["id"]})
            chat_id = chat.json()["id"]
            sent = await client.put(
                f"/api/v1/chats/{chat_id}/messages/m{number}",
                json={"content": f"Tell me a long story about ship number {number}."},
            )
            assert sent.status_code == 202
            acknowledged[chat_id] = (sent.json()["message"]["id"], sent.json()["reply"]["id"])

        # Wait until a reply has written text, then pull the plug.
        partial: dict[str, str] = {}
        for _ in range(600):
            for chat_id, (_, reply_id) in acknowledged.items():
                reply = next(m for m in await _history(client, chat_id) if m["id"] == reply_id)
                if reply["status"] == "generating" and reply["content"]:
                    partial[reply_id] = reply["content"]
            if partial:
                break
            await asyncio.sleep(0.1)
        assert partial, "no reply started streaming"
        server.kill_9()

        await server.start()
        deadline = asyncio.get_running_loop().time() + 120
        while True:
            replies = {}
            for chat_id, (message_id, reply_id) in acknowledged.items():
                history = await _history(client, chat_id)
                assert message_id in [m["id"] for m in history], "an acknowledged message was lost"
                replies[reply_id] = next(m for m in history if m["id"] == reply_id)
            if all(r["status"] in FINAL for r in replies.values()):
                break
            assert asyncio.get_running_loop().time() < deadline, replies
            await asyncio.sleep(0.2)
        for reply_id, reply in replies.items():
            assert reply["status"] == "complete" or (
                reply["status"] == "failed" and reply["retryable"]
            ), reply
            if reply_id in partial:
                # What we read was a checkpoint: the reply was continued from it, not redone.
                assert reply["content"].startswith(partial[reply_id]), (partial, reply)
    finally:
        await client.aclose()
        server.stop()


async def test_sigterm_ends_streams_checkpoints_replies_and_the_next_start_finishes_them(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    server_env["PERSONAE_GRACEFUL_SHUTDOWN_S"] = "1"
    server_env["PERSONAE_MAX_REPLY_TOKENS"] = "300"
    server = ServerProcess(server_env, tmp_path / "server.log")
    await server.start()
    client = httpx.AsyncClient(base_url=server.url, timeout=30)
    try:
        registered = await client.post(
            "/api/v1/auth/register", json={"username": "alice", "password": PASSWORD}
        )
        client.headers["X-CSRF-Token"] = registered.json()["csrf_token"]
        character = await client.post("/api/v1/characters", json={"name": "Storyteller"})
        chat = await client.post("/api/v1/chats", json={"character_id": character.json()["id"]})
        chat_id = chat.json()["id"]
        sent = await client.put(
            f"/api/v1/chats/{chat_id}/messages/long",
            json={"content": "Tell me a very long story about the sea."},
        )
        reply_id = sent.json()["reply"]["id"]
        async with client.stream("GET", f"/api/v1/chats/{chat_id}/events") as stream:
            terminated = False
            async for line in stream.aiter_lines():
                if line.startswith("event: token") and not terminated:
                    assert server.process is not None
                    server.process.send_signal(signal.SIGTERM)
                    terminated = True
            # The loop ends: the server closed the stream instead of holding shutdown open.
            assert terminated
        assert await asyncio.to_thread(server.process.wait, 30) == 0
        await server.start()
        for _ in range(1200):
            reply = next(m for m in await _history(client, chat_id) if m["id"] == reply_id)
            if reply["status"] in FINAL:
                break
            await asyncio.sleep(0.1)
        assert reply["status"] == "complete", reply
    finally:
        await client.aclose()
        server.stop()
