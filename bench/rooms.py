"""A group room with 20 members: the time from a message being stored to every member's
stream receiving it, and the prompt cache shared by two characters answering in turn.

Real processes on loopback: a SIMULATED backend (`personae simulate-backend`), a
Personae server on SQLite pointed at it, and this driver. Twenty people register,
join one room by an invite and each hold an open event stream
(`GET /api/v1/chats/{id}/events`, real HTTP). They send messages spread over the
members (`respond: false`: stored and delivered, no reply asked, so only the
delivery is measured). For every message and every member the driver notes when
that member's stream got the `message` event; printed: p50/p95/p99/max over all
member-deliveries, counted from the message's `created_at` (the server's clock
when it stored it; same machine) and from the send's 202 arriving here, whether
p99 is under the 100 ms target, and the load average.

Then a room with two characters in list order: each message is answered by the
first, then the second. The cached share of prompt tokens of every reply (the
backend's report, kept in the reply's generation record) shows whether the second
speaker reused the first one's prompt prefix. The full run measures it on the
simulated backend and on the embedded model (SmolLM2-135M through llama.cpp, as
`personae serve` runs it), side by side.

    python bench/rooms.py [--sends 200] [--turns 4] [--smoke]

`--smoke` (CI) sends 60 messages and plays 2 turns on the simulated backend only:
it checks that the script runs end to end and prints its figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from processes import cli_process, free_port, personae_env, wait_ready

PASSWORD = "a long enough passphrase"
MEMBERS = 20
TARGET_P99_MS = 100.0
FINAL = {"complete", "stopped", "failed", "filtered"}
MODEL = Path.home() / ".cache" / "personae-test" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class Stream:
    """One member's event stream: when each `message` event (by message id) arrived."""

    seen: dict[str, float] = field(default_factory=dict)
    here: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)


async def _read(client: httpx.AsyncClient, room_id: str, token: str, stream: Stream) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with client.stream("GET", f"/api/v1/chats/{room_id}/events", headers=headers) as answer:
        answer.raise_for_status()
        name = ""
        async for line in answer.aiter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name in ("message", "presence"):
                data = json.loads(line[6:])
                if name == "message":
                    stream.seen.setdefault(data["id"], time.time())
                else:
                    stream.here = len(data["here"])
                stream.changed.set()


async def _people(client: httpx.AsyncClient, count: int, prefix: str) -> list[str]:
    """An API token for each of `count` new accounts."""
    tokens = []
    for number in range(count):
        opened = await client.post(
            "/api/v1/auth/register",
            json={"username": f"{prefix}{number:02d}", "password": PASSWORD},
        )
        opened.raise_for_status()
        made = await client.post(
            "/api/v1/tokens",
            json={"name": "bench"},
            headers={"X-CSRF-Token": opened.json()["csrf_token"]},
        )
        made.raise_for_status()
        client.cookies.clear()
        tokens.append(made.json()["token"])
    return tokens


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _room(
    client: httpx.AsyncClient, tokens: list[str], names: list[str], turn_mode: str
) -> str:
    """A room owned by the first token, with characters `names`, everybody joined."""
    owner = _auth(tokens[0])
    characters = []
    for name in names:
        made = await client.post(
            "/api/v1/characters",
            json={"name": name, "tagline": f"{name} of the inn",
                  "description": f"{name} keeps the inn by the river and likes to talk."},
            headers=owner,
        )  # fmt: skip
        made.raise_for_status()
        characters.append(made.json()["id"])
    room = await client.post(
        "/api/v1/rooms",
        json={"title": "Bench", "character_ids": characters, "turn_mode": turn_mode},
        headers=owner,
    )
    room.raise_for_status()
    room_id: str = room.json()["id"]
    if len(tokens) > 1:
        invite = await client.post(f"/api/v1/rooms/{room_id}/invites", json={}, headers=owner)
        invite.raise_for_status()
        for token in tokens[1:]:
            accepted = await client.post(
                f"/api/v1/invites/{invite.json()['token']}/accept", headers=_auth(token)
            )
            accepted.raise_for_status()
    return room_id


def _when(text: str) -> float:
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


async def _wait_all(streams: list[Stream], ids: set[str], timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        for stream in streams:
            while not ids <= stream.seen.keys():
                stream.changed.clear()
                await stream.changed.wait()


async def delivery(url: str, sends: int, rate_per_s: float) -> bool:
    """Twenty members with open streams; `sends` messages; delivery times printed.
    True when p99 (from the message being stored) is under the target."""
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        tokens = await _people(client, MEMBERS, "member")
        room_id = await _room(client, tokens, ["Inna"], "manual")
        streams = [Stream() for _ in tokens]
        readers = [
            asyncio.create_task(_read(client, room_id, token, stream))
            for token, stream in zip(tokens, streams, strict=True)
        ]
        try:
            async with asyncio.timeout(30):  # everybody is here once every stream is open
                for stream in streams:
                    while stream.here < MEMBERS:
                        stream.changed.clear()
                        await stream.changed.wait()
            stored, acked = await _send_all(client, room_id, tokens, sends, rate_per_s)
            await _wait_all(streams, set(stored), 60)
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
    from_stored = [s.seen[m] - t for s in streams for m, t in stored.items()]
    from_ack = [s.seen[m] - t for s in streams for m, t in acked.items()]
    load = os.getloadavg()
    print(f"delivery: {MEMBERS} members with open streams, {len(stored)} messages sent "
          f"(~{rate_per_s:g}/s), {len(from_stored)} member-deliveries")  # fmt: skip
    for label, values in (("from created_at", from_stored), ("from the 202", from_ack)):
        figures = "  ".join(
            f"{name} {_percentile(values, share) * 1000:7.1f} ms"
            for name, share in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))
        )
        print(f"  {label:<16} {figures}")
    p99 = _percentile(from_stored, 0.99) * 1000
    met = p99 < TARGET_P99_MS
    print(f"  p99 from created_at < {TARGET_P99_MS:g} ms: {'yes' if met else 'NO'} ({p99:.1f} ms)")
    print(f"  load average (1, 5, 15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return met


async def _send_all(
    client: httpx.AsyncClient, room_id: str, tokens: list[str], sends: int, rate_per_s: float
) -> tuple[dict[str, float], dict[str, float]]:
    """Open-loop sends from the members in turn: {message id: created_at} and
    {message id: when its 202 arrived}."""
    stored: dict[str, float] = {}
    acked: dict[str, float] = {}
    rng = random.Random(18)

    async def send(number: int) -> None:
        answer = await client.put(
            f"/api/v1/chats/{room_id}/messages/bench-{number}",
            json={"content": f"Message {number} to everybody.", "respond": False},
            headers=_auth(tokens[number % len(tokens)]),
        )
        arrived = time.time()
        if answer.status_code != 202:
            raise RuntimeError(f"send {number}: {answer.status_code} {answer.text}")
        message = answer.json()["message"]
        stored[message["id"]] = _when(message["created_at"])
        acked[message["id"]] = arrived

    tasks = []
    for number in range(sends):
        tasks.append(asyncio.create_task(send(number)))
        await asyncio.sleep(rng.expovariate(rate_per_s))
    await asyncio.gather(*tasks)
    return stored, acked


async def cache_shares(url: str, database: Path, turns: int, label: str) -> None:
    """Two characters answer each message in turn; each reply's cached share printed."""
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        tokens = await _people(client, 1, f"cache{label[:3]}")
        room_id = await _room(client, tokens, ["Ada", "Brom"], "list")
        for turn in range(turns):
            sent = await client.put(
                f"/api/v1/chats/{room_id}/messages/turn-{turn}",
                json={"content": f"Ada and Brom, tell us about the river, part {turn + 1}."},
                headers=_auth(tokens[0]),
            )
            sent.raise_for_status()
            await _settled(client, room_id, tokens[0], 2 * (turn + 1))
    rows = _generations(database, room_id)
    print(f"prompt cache, {label}: two characters answering in turn ({turns} messages)")
    print(f"  {'reply':>5} {'speaker':<8} {'prompt tokens':>13} {'cached':>7} {'share':>6}")
    for number, (name, prompt, cached) in enumerate(rows, start=1):
        share = f"{cached / prompt:.0%}" if prompt and cached is not None else "n/a"
        print(f"  {number:>5} {name:<8} {prompt or 0:>13} {cached or 0:>7} {share:>6}")
    later = [(p, c) for _, p, c in rows[1:] if p and c is not None]
    if later:
        overall = sum(c for _, c in later) / sum(p for p, _ in later)
        print(f"  cached share of the prompts of replies 2..{len(rows)}: {overall:.0%}")


async def _settled(client: httpx.AsyncClient, room_id: str, token: str, replies: int) -> None:
    async with asyncio.timeout(240):
        while True:
            answer = await client.get(
                f"/api/v1/chats/{room_id}/messages", params={"limit": 200}, headers=_auth(token)
            )
            written = [m for m in answer.json()["items"] if m["role"] == "assistant"]
            if len(written) >= replies and all(m["status"] in FINAL for m in written):
                return
            await asyncio.sleep(0.1)


def _generations(database: Path, room_id: str) -> list[tuple[str, int | None, int | None]]:
    """(speaker, prompt tokens, cached tokens) of the room's replies, in order."""
    connection = sqlite3.connect(database)
    try:
        rows = connection.execute(
            "SELECT c.name, m.generation FROM messages m JOIN characters c "
            "ON c.id = m.character_id WHERE m.chat_id = ? AND m.role = 'assistant' "
            "ORDER BY m.position",
            (room_id,),
        ).fetchall()
    finally:
        connection.close()
    result = []
    for name, generation in rows:
        record: dict[str, Any] = json.loads(generation) if generation else {}
        result.append((name, record.get("prompt_tokens"), record.get("cached_tokens")))
    return result


@asynccontextmanager
async def server(work: Path, backend: str) -> AsyncIterator[str]:
    """A Personae server on SQLite in `work`: on a simulated backend ("sim") or the
    embedded model ("embedded"). Yields its URL."""
    port = free_port()
    settings = dict(
        environment="development", data_dir=str(work), seed_demo="false", log_level="warning",
        quality_gate="false", max_reply_tokens="40", register_rate_per_ip="1000000/hour",
        send_rate_per_ip="1000000/minute", send_rate_per_user="1000000/minute",
        room_send_rate="1000000/minute", room_max_members=str(MEMBERS),
    )  # fmt: skip
    with ExitStack() as stack:
        if backend == "sim":
            sim_port = free_port()
            settings["backends"] = f'["sim=http://127.0.0.1:{sim_port},slots=2"]'
            simulate = ["simulate-backend", "--port", str(sim_port), "--slots", "2",
                        "--tokens-per-second", "400", "--first-token-ms", "10"]  # fmt: skip
            stack.enter_context(cli_process(simulate, personae_env(**settings)))
            await wait_ready(f"http://127.0.0.1:{sim_port}", "/health")
        else:
            settings["model_path"] = str(MODEL)
        stack.enter_context(cli_process(["serve", "--port", str(port)], personae_env(**settings)))
        await wait_ready(f"http://127.0.0.1:{port}", "/readyz", timeout_s=120)
        yield f"http://127.0.0.1:{port}"


async def main(sends: int, rate_per_s: float, turns: int, embedded: bool) -> None:
    with tempfile.TemporaryDirectory() as work:
        async with server(Path(work), "sim") as url:
            await delivery(url, sends, rate_per_s)
            print()
            await cache_shares(url, Path(work) / "personae.db", turns, "simulated backend")
    if embedded:
        print()
        if not MODEL.exists():
            print(f"prompt cache, embedded model: skipped ({MODEL} is not there)")
            return
        with tempfile.TemporaryDirectory() as work:
            async with server(Path(work), "embedded") as url:
                await cache_shares(url, Path(work) / "personae.db", turns, "embedded SmolLM2")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0, help="messages a second")
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument(
        "--smoke", action="store_true", help="60 sends and 2 turns on the simulation, for CI"
    )
    arguments = parser.parse_args()
    if arguments.smoke:
        arguments.sends, arguments.rate, arguments.turns = 60, 20.0, 2
    asyncio.run(main(arguments.sends, arguments.rate, arguments.turns, not arguments.smoke))
