"""Time to the first token of a chat's first reply: a character with a ~2,000-token
definition, warmed (the chat opened first) against cold, and a ~100-token one,
side by side on the embedded model (SmolLM2-135M through xllamacpp).

Runs Personae over real HTTP against its embedded llama.cpp server (one slot,
4,096 tokens of context). Each case is a new character (a name and opening line
of its own, so no case finds another's prefix cached) and a new chat; the time is
from the send to the first `token` event on the chat's stream:

- long, cold: the chat is not opened before the send (no warm-up);
- long, warmed: the chat is opened (`GET /api/v1/chats/{id}`, what the web app
  does) and, before the send, the bench waits until its warm-up has completed
  (every chunk read; it opens the chat again if a warm-up was cancelled or found
  the backend busy, and says how often);
- short, cold and warmed: the same with a ~100-token definition;
- short, during a warm-up: a long character's chat is opened and, once its
  warm-up has read its first chunk, a short character's first message is sent:
  what a warm-up costs someone else's reply (at most the chunk being read).

Each reply's prompt and cached tokens are those llama.cpp reported
(`timings.prompt_n` and `cache_n`, kept in the reply's generation record): the
evidence that a warmed reply read only what was new; beside them, llama.cpp's own
time to the first token (the rest is Personae's). The target: the long character
warmed at most 1.5x the short one warmed (the long one warmed against the short
one cold is printed too). Cases take turns within each run, so a busy moment of
the machine hits each; the load average is printed.

    python bench/first_reply.py [--runs 3] [--tokens 2000] [--data-dir DIR] [--smoke]

`--smoke` (CI) runs once with a ~500-token definition: it checks that the script
runs end to end and prints its figures, not the target.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from personae.app import create_app
from personae.container import Container
from personae.llm.embedded import EmbeddedServer
from personae.llm.model_files import pull_default_model
from personae.settings import Settings
from personae.storage.repos import chats as chat_repo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import serve_app

PASSWORD = "a long enough passphrase"
CONTEXT = 4096
SHORT = 100  # the short definition, tokens
# The long character whose warm-up runs while another chat's reply is sent.
_LONG_FOR_DURING = 1000
# Openings of a chat before the bench gives up on its warm-up completing.
_OPENINGS = 5
_FACTS = [
    "The lighthouse on the north cape was built from grey granite hauled by ox cart.",
    "Its lamp burns whale oil in winter and rapeseed oil when the boats come home.",
    "The keeper writes the weather in a ledger bound in sealskin every dawn and dusk.",
    "Three gulls named Pitch, Tar and Rope sleep on the gallery rail most nights.",
    "A brass bell hangs by the door and rings by itself when fog rolls in from the sea.",
    "The village below trades smoked herring, wool and salt for lamp wicks and tea.",
    "Storms in the month of sleet have twice torn the lantern's copper roof away.",
    "Children from the village climb the stairs on feast days to count the steps.",
]


def _definition(opening: str, tokens: int) -> str:
    """About `tokens` tokens (four characters a token, SmolLM2's English average)."""
    lines = [opening]
    index = 0
    while sum(len(line) for line in lines) < tokens * 4:
        lines.append(f"{index}. {_FACTS[index % len(_FACTS)]}")
        index += 1
    return "\n".join(lines)


async def _login(url: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=url, timeout=300)
    opened = await client.post(
        "/api/v1/auth/register", json={"username": "bench", "password": PASSWORD}
    )
    opened.raise_for_status()
    client.headers["X-CSRF-Token"] = opened.json()["csrf_token"]
    return client


@dataclass
class Case:
    tokens: int
    warm: bool = False
    # Sent once another (long) character's warm-up has read a chunk.
    during_warmup: bool = False
    seconds: list[float] = field(default_factory=list)
    prompt: list[int] = field(default_factory=list)  # the reply's prompt tokens
    cached: list[int] = field(default_factory=list)  # of those, read from the cache
    # From the request to the backend to its first token (the reply's generation
    # record): the rest of `seconds` is Personae's own (claim, prompt, events).
    backend_ms: list[int] = field(default_factory=list)


@dataclass
class Warmups:
    completed: int = 0
    openings: int = 0
    seconds: list[float] = field(default_factory=list)


async def _first_token_s(client: httpx.AsyncClient, chat_id: str, text: str) -> tuple[float, str]:
    """Seconds from the send to the reply's first token on the chat's stream, and
    the reply's id."""
    first: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    opened = asyncio.Event()
    started = 0.0

    async def listen() -> None:
        async with client.stream("GET", f"/api/v1/chats/{chat_id}/events") as response:
            opened.set()
            event = ""
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    event = line.partition(":")[2].strip()
                elif line.startswith("data:") and event == "token" and not first.done():
                    json.loads(line.partition(":")[2])
                    first.set_result(time.perf_counter() - started)
                    return

    listening = asyncio.create_task(listen())
    try:
        await opened.wait()
        started = time.perf_counter()
        sent = await client.put(
            f"/api/v1/chats/{chat_id}/messages/{chat_id[-8:]}", json={"content": text}
        )
        sent.raise_for_status()
        return await asyncio.wait_for(first, 300), str(sent.json()["reply"]["id"])
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)


async def _new_chat(client: httpx.AsyncClient, name: str, tokens: int) -> str:
    opening = f"{name} is the keeper of a lighthouse and speaks in short, salty sentences."
    character = await client.post(
        "/api/v1/characters",
        json={"name": name, "description": _definition(opening, tokens), "first_message": "Ahoy."},
    )
    character.raise_for_status()
    chat = await client.post("/api/v1/chats", json={"character_id": character.json()["id"]})
    chat.raise_for_status()
    return str(chat.json()["id"])


async def _warm(
    client: httpx.AsyncClient, container: Container, chat_id: str, tally: Warmups
) -> None:
    """Open the chat until its warm-up has completed (every chunk read)."""
    warmer = container.warmer
    started = time.perf_counter()
    for _opening in range(_OPENINGS):
        completed = warmer.counts["sent"]
        tally.openings += 1
        (await client.get(f"/api/v1/chats/{chat_id}")).raise_for_status()
        await warmer.settled()
        if warmer.counts["sent"] > completed:
            tally.completed += 1
            tally.seconds.append(time.perf_counter() - started)
            return
        await asyncio.sleep(0.5)  # cancelled or busy: what it read stays cached
    raise SystemExit(f"no warm-up completed in {_OPENINGS} openings: {dict(warmer.counts)}")


async def _during_warmup(client: httpx.AsyncClient, container: Container, name: str) -> None:
    """Open a long character's chat and wait until its warm-up has read a chunk."""
    chat_id = await _new_chat(client, f"{name}w", _LONG_FOR_DURING)
    warmer = container.warmer
    chunks = warmer.counts["chunks"]
    (await client.get(f"/api/v1/chats/{chat_id}")).raise_for_status()
    while True:
        if warmer.counts["chunks"] > chunks:
            return
        await asyncio.sleep(0.02)


async def _case(
    client: httpx.AsyncClient, container: Container, name: str, case: Case, tally: Warmups
) -> None:
    chat_id = await _new_chat(client, name, case.tokens)
    if case.warm:
        await _warm(client, container, chat_id, tally)
    if case.during_warmup:
        await _during_warmup(client, container, name)
    seconds, reply_id = await _first_token_s(
        client, chat_id, "Good evening! How is the lamp tonight?"
    )
    await _settle(client, chat_id)
    await container.warmer.settled()  # a cancelled warm-up has ended too
    async with container.database.read() as tx:
        reply = await chat_repo.get_message(tx, reply_id)
    generation = (reply.generation if reply else None) or {}
    case.seconds.append(seconds)
    case.prompt.append(int(generation.get("prompt_tokens") or 0))
    case.cached.append(int(generation.get("cached_tokens") or 0))
    case.backend_ms.append(int(generation.get("first_token_ms") or 0))


async def _settle(client: httpx.AsyncClient, chat_id: str) -> None:
    """Wait for the reply to end, so the next case finds the backend idle."""
    while True:
        page = (await client.get(f"/api/v1/chats/{chat_id}/messages")).json()["items"]
        if all(m["status"] in ("complete", "failed", "stopped") for m in page):
            return
        await asyncio.sleep(0.05)


def _settings(work: Path, server: EmbeddedServer, chunk_tokens: int) -> Settings:
    return Settings(
        environment="development",
        data_dir=work,
        seed_demo=False,
        log_json=False,
        log_level="warning",
        backend_url=None,
        backends=[f"embedded={server.base_url},slots=1,key={server.api_key}"],
        context_length=CONTEXT,
        backend_probe_interval_s=0,
        # No status probes: their few tokens would land in some cases' timings.
        probe_interval_s=0,
        prompt_warmup_chunk_tokens=chunk_tokens,
        # A cold 2,000-token prompt can take over a minute to read on a busy machine:
        # give it the time, so "cold" is one reading rather than a timeout and a retry.
        first_token_timeout_s=600,
        max_reply_tokens=8,
        summary_enabled=False,
        send_rate_per_user="1000000/minute",
        send_rate_per_ip="1000000/minute",
    )


async def run(runs: int, long_tokens: int, chunk_tokens: int, data_dir: Path) -> None:
    model = pull_default_model(data_dir, progress=lambda line: print(f"# {line}"))
    load_before = os.getloadavg()
    server = await EmbeddedServer.start(model, context_length=CONTEXT, slots=1)
    cases = {
        "long, cold": Case(long_tokens),
        "long, warmed": Case(long_tokens, warm=True),
        "short, cold": Case(SHORT),
        "short, warmed": Case(SHORT, warm=True),
        "short, during a warm-up": Case(SHORT, during_warmup=True),
    }
    tally = Warmups()
    try:
        with tempfile.TemporaryDirectory() as work:
            app = create_app(_settings(Path(work), server, chunk_tokens))
            async with serve_app(app) as url:
                container: Container = app.state.container
                client = await _login(url)
                try:
                    await _case(client, container, "Nobody", Case(20), Warmups())  # first use
                    for run_number in range(runs):
                        for index, case in enumerate(cases.values()):
                            name = f"Keeper{run_number}x{index}"
                            await _case(client, container, name, case, tally)
                    counts = dict(container.warmer.counts)
                    if container.warmer.last_failure:
                        print(f"# the last failed warm-up: {container.warmer.last_failure}")
                finally:
                    await client.aclose()
    finally:
        await server.stop()
    _report(cases, tally, counts, long_tokens, chunk_tokens, runs, load_before)


def _report(
    cases: dict[str, Case],
    tally: Warmups,
    counts: dict[str, int],
    long_tokens: int,
    chunk_tokens: int,
    runs: int,
    load_before: tuple[float, float, float],
) -> None:
    median = {name: statistics.median(case.seconds) for name, case in cases.items()}
    short = median["short, warmed"]
    print(
        f"first reply's time to first token, median of {runs} (long definition ~{long_tokens} "
        f"tokens, short ~{SHORT}; warm-ups read in chunks of ~{chunk_tokens} tokens)"
    )
    print(
        f"{'case':>24} {'ms':>8} {'vs short, warmed':>17} {'backend ms':>11} "
        f"{'prompt tokens, cached':>22}"
    )
    for name, case in cases.items():
        tokens = f"{statistics.median(case.prompt):.0f}, {statistics.median(case.cached):.0f}"
        print(
            f"{name:>24} {median[name] * 1000:>8.0f} {median[name] / short:>16.2f}x "
            f"{statistics.median(case.backend_ms):>11.0f} {tokens:>22}"
        )
    waited = statistics.median(tally.seconds) if tally.seconds else 0.0
    print(
        f"warm-ups completed before the send: {tally.completed} of {runs * 2} warmed cases "
        f"({tally.openings} openings; median {waited:.1f} s from opening to completed); "
        f"all warm-ups: {counts}"
    )
    print(f"long cold / long warmed: {median['long, cold'] / median['long, warmed']:.1f}x")
    cold_ratio = median["long, warmed"] / median["short, cold"]
    print(f"long warmed / short cold: {cold_ratio:.2f}x")
    during = median["short, during a warm-up"] - median["short, cold"]
    print(f"a warm-up's cost to another chat's reply sent meanwhile: {during * 1000:+.0f} ms")
    load_after = os.getloadavg()
    print(f"load average (1, 5, 15 min): before {load_before}, after {load_after}")
    ratio = median["long, warmed"] / short
    verdict = "met" if ratio <= 1.5 else "MISSED"
    print(f"target (long warmed at most 1.5x the short one, warmed): {ratio:.2f}x, {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=2000, help="the long definition's size")
    parser.add_argument(
        "--chunk-tokens", type=int, default=128, help="PERSONAE_PROMPT_WARMUP_CHUNK_TOKENS"
    )
    parser.add_argument("--data-dir", type=Path, default=Path.home() / ".cache" / "personae-test")
    parser.add_argument("--smoke", action="store_true", help="one short run for CI")
    arguments = parser.parse_args()
    if arguments.smoke:
        arguments.runs, arguments.tokens = 1, 500
    asyncio.run(run(arguments.runs, arguments.tokens, arguments.chunk_tokens, arguments.data_dir))


if __name__ == "__main__":
    main()
