"""One service, several processes: an api process stores sends, workers write the
replies, and a worker killed mid-reply hands its reply to the other worker, which
continues from the checkpoint (real processes on PostgreSQL and Redis, replies from
a SIMULATED backend process)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from cluster_processes import cluster
from conftest import PASSWORD, POSTGRES_URL, REDIS_URL
from personae.storage.db import Database
from personae.storage.tables import jobs

pytestmark = pytest.mark.skipif(
    not (POSTGRES_URL and REDIS_URL), reason="several processes need PostgreSQL and Redis"
)


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
    async with cluster(database_url, tmp_path) as running:
        api, workers = running.apis[0], running.workers
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
