"""Time to the first token of a chat's first reply: a character with a ~2,000-token
definition, warmed (the chat opened first) against cold, and a ~100-token one,
side by side on the embedded model (SmolLM2-135M through xllamacpp).

Runs Personae over real HTTP against its embedded llama.cpp server (one slot,
4,096 tokens of context). Each case is a new character (a name and opening line
of its own, so no case finds another's prefix cached) and a new chat; the time is
from the send to the first `token` event on the chat's stream:

- long, cold: the chat is not opened before the send (no warm-up);
- long, warmed: the chat is opened (`GET /api/v1/chats/{id}`, what the web app
  does), its warm-up waited for, then the send;
- short, warmed and cold: the same with a ~100-token definition.

The target: the long character warmed at most 1.5x the short one (opened the same
way). Cases take turns within each run, so a busy moment of the machine hits each.

    python bench/first_reply.py [--runs 3] [--data-dir DIR] [--smoke]

`--smoke` (CI) runs once with a ~500-token definition: it checks that the script
runs end to end and prints its figures, not the target.
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

import httpx

from personae.app import create_app
from personae.container import Container
from personae.llm.embedded import EmbeddedServer
from personae.llm.model_files import pull_default_model
from personae.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import serve_app

PASSWORD = "a long enough passphrase"
CONTEXT = 4096
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


async def _first_token_s(client: httpx.AsyncClient, chat_id: str, text: str) -> float:
    """Seconds from the send to the reply's first token on the chat's stream."""
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
        return await asyncio.wait_for(first, 300)
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)


async def _case(
    client: httpx.AsyncClient, container: Container, name: str, tokens: int, *, warm: bool
) -> float:
    opening = f"{name} is the keeper of a lighthouse and speaks in short, salty sentences."
    character = await client.post(
        "/api/v1/characters",
        json={"name": name, "description": _definition(opening, tokens), "first_message": "Ahoy."},
    )
    character.raise_for_status()
    chat = await client.post("/api/v1/chats", json={"character_id": character.json()["id"]})
    chat.raise_for_status()
    chat_id = str(chat.json()["id"])
    if warm:
        (await client.get(f"/api/v1/chats/{chat_id}")).raise_for_status()
        await container.warmer.settled()
    seconds = await _first_token_s(client, chat_id, "Good evening! How is the lamp tonight?")
    await _settle(client, chat_id)
    return seconds


async def _settle(client: httpx.AsyncClient, chat_id: str) -> None:
    """Wait for the reply to end, so the next case finds the backend idle."""
    while True:
        page = (await client.get(f"/api/v1/chats/{chat_id}/messages")).json()["items"]
        if all(m["status"] in ("complete", "failed", "stopped") for m in page):
            return
        await asyncio.sleep(0.05)


async def run(runs: int, long_tokens: int, data_dir: Path) -> None:
    model = pull_default_model(data_dir, progress=lambda line: print(f"# {line}"))
    server = await EmbeddedServer.start(model, context_length=CONTEXT, slots=1)
    cases: dict[str, tuple[int, bool]] = {
        "long, cold": (long_tokens, False),
        "long, warmed": (long_tokens, True),
        "short, cold": (100, False),
        "short, warmed": (100, True),
    }
    times: dict[str, list[float]] = {case: [] for case in cases}
    try:
        with tempfile.TemporaryDirectory() as work:
            settings = Settings(
                environment="development",
                data_dir=Path(work),
                seed_demo=False,
                log_json=False,
                log_level="warning",
                backend_url=None,
                backends=[f"embedded={server.base_url},slots=1,key={server.api_key}"],
                context_length=CONTEXT,
                backend_probe_interval_s=0,
                # A status probe's generation cancels a warm-up as a reply does; none
                # here, so each case's warm-up runs to its end.
                probe_interval_s=0,
                max_reply_tokens=8,
                summary_enabled=False,
                send_rate_per_user="1000000/minute",
                send_rate_per_ip="1000000/minute",
            )
            app = create_app(settings)
            async with serve_app(app) as url:
                container: Container = app.state.container
                client = await _login(url)
                try:
                    await _case(client, container, "Nobody", 20, warm=False)  # first-use costs
                    for run_number in range(runs):
                        for index, (case, (tokens, warm)) in enumerate(cases.items()):
                            name = f"Keeper{run_number}x{index}"
                            times[case].append(
                                await _case(client, container, name, tokens, warm=warm)
                            )
                    counts = dict(container.warmer.counts)
                finally:
                    await client.aclose()
    finally:
        await server.stop()
    _report(times, long_tokens, runs, counts)


def _report(
    times: dict[str, list[float]], long_tokens: int, runs: int, counts: dict[str, int]
) -> None:
    medians = {case: statistics.median(values) for case, values in times.items()}
    print(f"first reply's time to first token, median of {runs} (definition ~{long_tokens} tokens)")
    print(f"{'case':>14} {'ms':>9} {'vs short, warmed':>17}")
    for case, value in medians.items():
        print(f"{case:>14} {value * 1000:>9.0f} {value / medians['short, warmed']:>16.2f}x")
    ratio = medians["long, warmed"] / medians["short, warmed"]
    print(f"warm-ups: {counts}")
    print(f"long cold / long warmed: {medians['long, cold'] / medians['long, warmed']:.1f}x")
    verdict = "met" if ratio <= 1.5 else "MISSED"
    print(f"target (long warmed at most 1.5x the short one): {ratio:.2f}x, {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=2000, help="the long definition's size")
    parser.add_argument("--data-dir", type=Path, default=Path.home() / ".cache" / "personae-test")
    parser.add_argument("--smoke", action="store_true", help="one short run for CI")
    arguments = parser.parse_args()
    if arguments.smoke:
        arguments.runs, arguments.tokens = 1, 500
    asyncio.run(run(arguments.runs, arguments.tokens, arguments.data_dir))


if __name__ == "__main__":
    main()
