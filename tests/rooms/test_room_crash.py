"""`kill -9` of a real server in the middle of a room (a SIMULATED backend in its own
process): no acknowledged message is lost, every reply ends final, and the room's
plan goes on after the restart (the turns are rows, started in the transaction that
ends the reply before them)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import httpx

from cluster_processes import Process, stop_all
from conftest import PASSWORD, REDIS_URL

FINAL = {"complete", "stopped", "failed", "filtered"}


async def _user(url: str, name: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=url, timeout=30)
    registered = await client.post(
        "/api/v1/auth/register", json={"username": name, "password": PASSWORD}
    )
    assert registered.status_code == 201, registered.text
    client.headers["X-CSRF-Token"] = registered.json()["csrf_token"]
    return client


async def _history(client: httpx.AsyncClient, room_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/chats/{room_id}/messages", params={"limit": 200})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def _env(database_url: str, tmp_path: Path, backend_url: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PERSONAE_")}
    env.update(
        PERSONAE_ENVIRONMENT="development",
        PERSONAE_DATA_DIR=str(tmp_path / "data"),
        PERSONAE_DATABASE_URL=database_url,
        PERSONAE_BACKENDS=json.dumps([f"sim={backend_url},slots=4"]),
        PERSONAE_MAX_REPLY_TOKENS="60",
        PERSONAE_JOB_LEASE_S="3",
        PERSONAE_SEED_DEMO="false",
        PERSONAE_LOG_JSON="false",
        PERSONAE_EMBEDDING_MODEL="lexical",
        PERSONAE_VOICE="off",  # voice is tested in tests/voice
    )
    if REDIS_URL:
        env["PERSONAE_REDIS_URL"] = REDIS_URL
        env["PERSONAE_REDIS_PREFIX"] = f"room-crash-{os.getpid()}"
    return env


async def test_kill_9_mid_room_loses_nothing_and_every_reply_ends(
    database_url: str, tmp_path: Path
) -> None:
    base = {key: value for key, value in os.environ.items() if not key.startswith("PERSONAE_")}
    backend = Process(
        ["simulate-backend", "--slots", "4", "--tokens-per-second", "15"],
        base,
        tmp_path / "backend.log",
    )
    await backend.ready("/health")
    server = Process(["serve"], _env(database_url, tmp_path, backend.url), tmp_path / "server.log")
    clients: list[httpx.AsyncClient] = []
    try:
        await server.ready()
        owner, member = await _user(server.url, "owner"), await _user(server.url, "member")
        clients += [owner, member]
        ids = []
        for name in ("Ada", "Brom", "Cleo"):
            made = await owner.post("/api/v1/characters", json={"name": name})
            ids.append(made.json()["id"])
        room = await owner.post("/api/v1/rooms", json={"character_ids": ids, "turn_mode": "list"})
        room_id = room.json()["id"]
        token = (await owner.post(f"/api/v1/rooms/{room_id}/invites", json={})).json()["token"]
        assert (await member.post(f"/api/v1/invites/{token}/accept")).status_code == 200
        acknowledged = []
        for number, client in enumerate((owner, member)):
            sent = await client.put(
                f"/api/v1/chats/{room_id}/messages/c{number}",
                json={"content": f"Tell a long tale, number {number}."},
            )
            assert sent.status_code == 202, sent.text
            acknowledged.append(sent.json()["message"]["id"])

        # A reply has written text: pull the plug.
        async with asyncio.timeout(60):
            while True:
                history = await _history(owner, room_id)
                if any(m["status"] == "generating" and m["content"] for m in history):
                    break
                await asyncio.sleep(0.1)
        server.kill_9()
        server.restart()
        await server.ready()

        # The last message's plan (Ada, Brom, Cleo in list order) is carried out.
        async with asyncio.timeout(120):
            while True:
                history = await _history(owner, room_id)
                assert all(m_id in [m["id"] for m in history] for m_id in acknowledged)
                last_user = max(m["position"] for m in history if m["role"] == "user")
                after = [m for m in history if m["position"] > last_user]
                if [m["character_name"] for m in after] == ["Ada", "Brom", "Cleo"] and all(
                    m["status"] in FINAL for m in history
                ):
                    break
                await asyncio.sleep(0.2)
        assert [m["status"] for m in after] == ["complete"] * 3
        replies = [m for m in history if m["role"] == "assistant"]
        assert all(m["status"] in FINAL for m in replies)
    finally:
        for client in clients:
            await client.aclose()
        stop_all([server, backend])
