"""Personae's routing, measured side by side in one run.

1. Time to first token through Personae (HTTP send → first `token` event on the
   chat's SSE stream) versus asking the same backend directly, alternating. Personae
   runs as its own process (`personae serve`, SQLite), as it does in production;
   the backends are the embedded model (SmolLM2-135M via xllamacpp) and a
   SIMULATED backend process with a 250 ms first token (a busy GPU server).
2. The cached share of prompt tokens over 30-turn conversations spread over two
   SIMULATED backends, routing affinity on versus off. Each simulated backend
   keeps the KV cache of 2 prompts (a GPU keeps a few per slot, not every chat).
   Without affinity, idle backends are taken in turn.

    python bench/routing.py [--runs 30] [--turns 30] [--chats 3] [--smoke]

`--smoke` (CI) measures 2 runs and 3 turns: it checks that the script runs end to
end and prints its figures, too few to judge the overhead or the cached share.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from processes import cli_process, free_port, personae_env, wait_ready

from conftest import serve_app, simulated_backend
from personae.app import create_app
from personae.llm.embedded import EmbeddedServer
from personae.llm.model_files import pull_default_model
from personae.services.prompting import system_prompt
from personae.settings import Settings
from personae.storage.db import Database
from personae.storage.repos import characters as character_repo
from personae.storage.repos import chats as chat_repo

PASSWORD = "a long enough passphrase"


def _settings(data_dir: Path, **values: Any) -> Settings:
    return Settings(
        environment="development",
        data_dir=data_dir,
        seed_demo=False,
        log_json=False,
        log_level="warning",
        backend_probe_interval_s=0,
        send_rate_per_user="1000000/minute",
        send_rate_per_ip="1000000/minute",
        queue_max_per_user=100,
        **values,
    )


async def _login(url: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=url, timeout=120)
    opened = await client.post(
        "/api/v1/auth/register", json={"username": "bench", "password": PASSWORD}
    )
    client.headers["X-CSRF-Token"] = opened.json()["csrf_token"]
    return client


async def _chat(client: httpx.AsyncClient) -> str:
    character = await client.post(
        "/api/v1/characters", json={"name": "Bramble", "description": "A fox who keeps tea."}
    )
    chat = await client.post("/api/v1/chats", json={"character_id": character.json()["id"]})
    return str(chat.json()["id"])


async def _through_personae(client: httpx.AsyncClient, chat_id: str, text: str) -> float:
    async with client.stream("GET", f"/api/v1/chats/{chat_id}/events") as stream:
        started = time.perf_counter()
        sent = await client.put(f"/api/v1/chats/{chat_id}/messages/{text}", json={"content": text})
        reply_id = sent.json()["reply"]["id"]
        first: float | None = None
        name = ""
        async for line in stream.aiter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                if name == "token" and first is None:
                    first = time.perf_counter() - started
                if (
                    name == "reply_state"
                    and data["id"] == reply_id
                    and data["status"]
                    in (
                        "complete",
                        "failed",
                        "stopped",
                    )
                ):
                    assert first is not None, data
                    return first
    raise RuntimeError("stream ended early")


async def _direct(url: str, api_key: str | None, messages: list[dict[str, str]]) -> float:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    body = {"messages": messages, "stream": True, "max_tokens": 16, "cache_prompt": True}
    first: float | None = None
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:
        started = time.perf_counter()
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            # Read to the end, as Personae's reply is: the next measurement, of either
            # path, begins with the backend idle (not still ending a stream let go of).
            async for line in response.aiter_lines():
                if first is None and line.startswith("data: ") and '"content"' in line:
                    first = time.perf_counter() - started
    if first is None:
        raise RuntimeError("no token")
    return first


async def _system_prompt(database: Path, chat_id: str) -> str:
    """The system prompt Personae builds for this chat (read from its database)."""
    store = Database(f"sqlite:///{database}")
    try:
        async with store.read() as tx:
            chat = await chat_repo.get_chat(tx, chat_id)
            assert chat is not None
            character = await character_repo.get_character(tx, chat.character_id)
            assert character is not None
    finally:
        await store.dispose()
    return system_prompt(character, chat)


async def overhead(runs: int, work: Path, url: str, api_key: str | None, label: str) -> None:
    data_dir = work / f"overhead-{label.split()[0]}"
    port = free_port()
    env = personae_env(
        environment="development",
        data_dir=str(data_dir),
        seed_demo="false",
        log_level="warning",
        backend_url=url,
        backend_api_key=api_key or "",
        backend_slots="1",
        max_reply_tokens="16",
        backend_probe_interval_s="0",
        send_rate_per_user="1000000/minute",
        send_rate_per_ip="1000000/minute",
        queue_max_per_user="100",
    )
    personae_s: list[float] = []
    direct_s: list[float] = []
    with cli_process(["serve", "--port", str(port)], env):
        personae_url = f"http://127.0.0.1:{port}"
        await wait_ready(personae_url, "/readyz")
        client = await _login(personae_url)
        for run in range(runs + 1):
            chat_id = await _chat(client)
            # The prompt Personae builds for this chat, sent straight to the backend
            # too (with another user text, so neither path reuses the other's turn).
            messages = [
                {
                    "role": "system",
                    "content": await _system_prompt(data_dir / "personae.db", chat_id),
                },
                {"role": "user", "content": f"hi there {run}"},
            ]
            if run % 2:
                through = await _through_personae(client, chat_id, f"hello{run}")
                direct = await _direct(url, api_key, messages)
            else:
                direct = await _direct(url, api_key, messages)
                through = await _through_personae(client, chat_id, f"hello{run}")
            if run:  # the first pair warms both paths up
                personae_s.append(through)
                direct_s.append(direct)
        await client.aclose()
    p, d = statistics.median(personae_s), statistics.median(direct_s)
    print(f"time to first token, median of {runs}, {label}:")
    print(f"  through Personae: {p * 1000:8.1f} ms")
    print(f"  backend directly: {d * 1000:8.1f} ms")
    extra = f"overhead {100 * (p / d - 1):+.1f}%, {1000 * (p - d):+.1f} ms"
    print(f"  Personae / direct: {p / d:.3f}  ({extra})")


async def cached_share(turns: int, chats: int, affinity: bool, work: Path) -> float:
    async with (
        simulated_backend(name="a", cache_entries=2, tokens_per_second=2000) as a,
        simulated_backend(name="b", cache_entries=2, tokens_per_second=2000) as b,
    ):
        settings = _settings(
            work / f"affinity-{affinity}",
            backends=[f"a={a},slots=4", f"b={b},slots=4"],
            routing_affinity=affinity,
            max_reply_tokens=24,
        )
        app = create_app(settings)
        async with serve_app(app) as url:
            client = await _login(url)
            chat_ids = [await _chat(client) for _ in range(chats)]
            for turn in range(turns):
                for number, chat_id in enumerate(chat_ids):
                    # Each chat its own words, so chats share no prefix but the character's.
                    sent = await client.put(
                        f"/api/v1/chats/{chat_id}/messages/t{turn}",
                        json={"content": f"Chat {number} says: tell me more, turn {turn}."},
                    )
                    reply_id = sent.json()["reply"]["id"]
                    while True:
                        page = await client.get(f"/api/v1/chats/{chat_id}/messages")
                        reply = next(m for m in page.json()["items"] if m["id"] == reply_id)
                        if reply["status"] in ("complete", "failed"):
                            break
                        await asyncio.sleep(0.01)
            await client.aclose()
        totals = {"prompt_tokens": 0, "cached_tokens": 0}
        for backend in (a, b):
            async with httpx.AsyncClient(base_url=backend) as probe:
                stats = (await probe.get("/simulation/stats")).json()
            for key in totals:
                totals[key] += stats[key]
    return totals["cached_tokens"] / totals["prompt_tokens"]


async def main(runs: int, turns: int, chats: int) -> None:
    model = pull_default_model(Path.home() / ".cache" / "personae-test", progress=lambda _l: None)
    with tempfile.TemporaryDirectory() as work:
        server = await EmbeddedServer.start(model, context_length=2048, slots=2)
        try:
            await overhead(runs, Path(work), server.base_url, server.api_key, "embedded model")
        finally:
            await server.stop()
        print()
        port = free_port()
        # Two slots, as the embedded server has: a direct call that stops reading at
        # its first token must not hold the slot Personae's next reply needs.
        arguments = ["simulate-backend", "--port", str(port), "--slots", "2"]
        arguments += ["--first-token-ms", "250", "--tokens-per-second", "200"]
        with cli_process(arguments, personae_env()):
            simulated = f"http://127.0.0.1:{port}"
            await wait_ready(simulated, "/health")
            label = "SIMULATED backend with a 250 ms first token (a busy GPU server)"
            await overhead(runs, Path(work), simulated, None, label)
        on = await cached_share(turns, chats, True, Path(work))
        off = await cached_share(turns, chats, False, Path(work))
    print()
    print(f"cached share of prompt tokens, {chats} chats x {turns} turns, 2 simulated backends:")
    print(f"  affinity on:  {on:.1%}")
    print(f"  affinity off: {off:.1%}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--turns", type=int, default=30)
    # An odd number: in lockstep, round robin over an even number of chats would keep
    # each chat on one backend by accident, hiding what routing without affinity does.
    parser.add_argument("--chats", type=int, default=3)
    parser.add_argument(
        "--smoke", action="store_true", help="2 runs and 3 turns, for CI (too few to judge)"
    )
    arguments = parser.parse_args()
    if arguments.smoke:
        arguments.runs, arguments.turns = 2, 3
    asyncio.run(main(arguments.runs, arguments.turns, arguments.chats))
