"""One service, several processes: an api process stores sends, workers write the
replies, and a worker killed mid-reply hands its reply to the other worker, which
continues from the checkpoint (real processes on PostgreSQL and Redis, replies from
a SIMULATED backend process)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from conftest import PASSWORD, POSTGRES_URL, REDIS_URL
from personae.storage.db import Database
from personae.storage.tables import jobs

pytestmark = pytest.mark.skipif(
    not (POSTGRES_URL and REDIS_URL), reason="several processes need PostgreSQL and Redis"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Process:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.port = _free_port()
        with log.open("ab") as sink:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "personae.cli", *args, "--port", str(self.port)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=sink,
            )
        self.log = log
        self.url = f"http://127.0.0.1:{self.port}"

    async def ready(self, path: str = "/readyz") -> None:
        async with httpx.AsyncClient(base_url=self.url) as client:
            for _ in range(300):
                assert self.popen.poll() is None, self.log.read_text()[-3000:]
                try:
                    if (await client.get(path)).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError("not ready: " + self.log.read_text()[-3000:])

    def kill_9(self) -> None:
        os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()


@asynccontextmanager
async def _cluster(database_url: str, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PERSONAE_")}
    env.update(
        PERSONAE_ENVIRONMENT="development",
        PERSONAE_DATA_DIR=str(tmp_path / "data"),
        PERSONAE_DATABASE_URL=database_url,
        PERSONAE_REDIS_URL=str(REDIS_URL),
        PERSONAE_REDIS_PREFIX=f"roles-{os.getpid()}",
        PERSONAE_SECRET_KEY="a-secret-key-shared-by-every-process-0123456789",
        PERSONAE_SEED_DEMO="false",
        PERSONAE_LOG_JSON="false",
        PERSONAE_EMBEDDING_MODEL="lexical",
        PERSONAE_MAX_REPLY_TOKENS="60",
    )
    started: list[Process] = []
    try:
        backend = Process(
            ["simulate-backend", "--slots", "4", "--tokens-per-second", "15"],
            env,
            tmp_path / "backend.log",
        )
        started.append(backend)
        await backend.ready("/health")
        api = Process(["serve", "--role", "api"], env, tmp_path / "api.log")
        started.append(api)
        await api.ready()
        workers = []
        for number in range(2):
            worker = Process(
                ["worker", "--backend", f"sim={backend.url},slots=4"],
                env,
                tmp_path / f"worker{number}.log",
            )
            started.append(worker)
            workers.append(worker)
        for worker in workers:
            await worker.ready()
        yield {"api": api, "workers": workers}
    finally:
        for process in reversed(started):
            process.stop()


async def _owner_of(database_url: str, reply_id: str) -> str | None:
    database = Database(database_url)
    try:
        async with database.read() as tx:
            query = select(jobs.c.lease_owner).where(jobs.c.message_id == reply_id)
            return (await tx.execute(query)).scalar_one_or_none()
    finally:
        await database.dispose()


async def _reply(client: httpx.AsyncClient, chat_id: str, reply_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/chats/{chat_id}/messages", params={"limit": 50})
    return next(m for m in response.json()["items"] if m["id"] == reply_id)


async def test_an_api_process_stores_and_workers_write_and_a_killed_worker_hands_over(
    database_url: str, tmp_path: Path
) -> None:
    async with _cluster(database_url, tmp_path) as cluster:
        api, workers = cluster["api"], cluster["workers"]
        async with httpx.AsyncClient(base_url=workers[0].url) as worker_client:
            assert (await worker_client.get("/healthz")).status_code == 200
            assert (await worker_client.get("/metrics")).status_code == 200
            assert (await worker_client.get("/api/v1/characters")).status_code == 404
        async with httpx.AsyncClient(base_url=api.url) as client:
            body = {"username": "alice", "password": PASSWORD}
            registered = await client.post("/api/v1/auth/register", json=body)
            assert registered.status_code == 201, registered.text
            client.headers["X-CSRF-Token"] = registered.json()["csrf_token"]
            character = await client.post("/api/v1/characters", json={"name": "Bramble"})
            chat = await client.post("/api/v1/chats", json={"character_id": character.json()["id"]})
            chat_id = chat.json()["id"]
            sent = await client.put(
                f"/api/v1/chats/{chat_id}/messages/m1", json={"content": "Tell me a story"}
            )
            assert sent.status_code == 202, sent.text
            reply_id = sent.json()["reply"]["id"]
            # Wait until a worker has checkpointed some text, then kill that worker.
            for _ in range(200):
                reply = await _reply(client, chat_id, reply_id)
                if reply["status"] == "generating" and reply["content"]:
                    break
                await asyncio.sleep(0.1)
            checkpoint = reply["content"]
            assert checkpoint, reply
            owner = await _owner_of(database_url, reply_id)
            writer = next(w for w in workers if f":{w.popen.pid}:" in str(owner))
            writer.kill_9()
            for _ in range(300):
                reply = await _reply(client, chat_id, reply_id)
                if reply["status"] in ("complete", "failed", "stopped"):
                    break
                await asyncio.sleep(0.1)
        assert reply["status"] == "complete", reply
        assert reply["content"].startswith(checkpoint), "continued from its checkpoint"
        survivor = next(w for w in workers if w is not writer)
        assert f":{survivor.popen.pid}:" not in str(owner)
